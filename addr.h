/* addr.h - SMTP address parsing, qmail-compatible */
#ifndef ADDR_H
#define ADDR_H
#include <stddef.h>
#include <stralloc.h>

#define ADDR_MAX 899  /* qmail-smtpd: longer parsed addresses get 555 */

enum { ADDR_OK = 1, ADDR_TOOLONG = 0, ADDR_NOIPME = -1, ADDR_NOMEM = -2 };

/* addr_parse - the address in a MAIL/RCPT argument, as qmail-smtpd's addrparse: into addr,
 * NUL-terminated (len excludes the NUL). liphost: control/localiphost, or 0 when off. */
int addr_parse(stralloc *addr, const char *arg, const stralloc *liphost);

/* addr_bracketip - "[d.d.d.d]" exactly (qmail's ip_scanbracket + nothing after); 1 or 0 */
int addr_bracketip(const char *s, unsigned char ip[4]);

/* addr_ipme - is ip one of this host's IPv4 addresses (or 0.0.0.0)? 1, 0, -1 error.
 * The interface list is read on first use, not at start-up. */
int addr_ipme(const unsigned char ip[4]);

/* addr_domain - the text after the last @, or 0 when there is none */
const char *addr_domain(const char *addr, size_t len);
#endif
