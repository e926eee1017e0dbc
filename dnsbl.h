/* dnsbl.h - DNS facts and checks through c-ares: rDNS and forward confirmation, DNSBL/DNSWL
 * scores, the sender domain (RETURNMXCHECK); all lookups in parallel on one channel */
#ifndef DNSBL_H
#define DNSBL_H
#include <stddef.h>
#include "decision.h"
#include "session.h"

/* dnsbl_start - at connect, after setup(): read the DNS settings; when a check needs DNS,
 * create the channel and send every client lookup at once. 0, or -1 with the control file
 * that could not be read in *file (421). Nothing configured: no channel, no lookup. */
int dnsbl_start(struct session *s, const char **file);
/* dnsbl_greeting - with DNSBLGREETING, the client verdict before the banner: 554 or 421, drop */
struct decision dnsbl_greeting(struct session *s);
/* dnsbl_ptr_pending - the client's PTR was asked and neither the answer nor the budget's end
 * has come (the greeting delay waits for it to know the client's class) */
int dnsbl_ptr_pending(void);
struct decision dnsbl_mail(struct session *s);  /* STAGE_MAIL: send the sender-domain lookups */
struct decision dnsbl_rcpt(struct session *s);  /* STAGE_RCPT: wait (budget) and decide */
/* dnsbl_header - in tag-only mode (RBLONLYHEADER, DNSBLTAG) the "X-RBL: ...\n" header line
 * for a listed client, else 0 */
const char *dnsbl_header(void);

/* exposed for tests/t_dnsbl.c */
struct dnsbl_zone {
  char *name;
  int weight;                     /* negative: a DNSWL */
  int filtered;                   /* answers must match mask */
  unsigned char mask[4][32];      /* per octet: a 256-bit set of accepted values */
};
int dnsbl_parse_zone(const char *line, struct dnsbl_zone *z);  /* 0 ok, -1 syntax */
int dnsbl_match(const struct dnsbl_zone *z, const unsigned char a[4]);
int dnsbl_revname(char *out, size_t size, const char *ip, const char *suffix); /* len, -1 */
size_t dnsbl_escape(char *out, size_t size, const char *in, size_t len);  /* printable, capped */
#endif
