/* valldap.h - qmail-ldap's users through libldap, loaded with dlopen on first use */
#ifndef VALLDAP_H
#define VALLDAP_H
#include <stddef.h>
#include <stralloc.h>

#define VALLDAP_CONNECT_MS 3000  /* connect and bind, all servers together */
#define VALLDAP_SEARCH_MS 5000   /* every search of one lookup together */
#define VALLDAP_EXT_LEVELS 4     /* qmail-ldap's DASH_EXT_LEVELS */
#define VALLDAP_AS_NEED (12ul << 20)  /* address space a session needs with libldap, GnuTLS,
                                         SASL loaded (measured: 12 000 KiB works, 11 000 not) */

enum {
  VL_NOTFOUND = 0,   /* no entry: qmail-ldap goes on to the local lookup (ldaplocaldelivery) */
  VL_FOUND = 1,      /* an entry that takes mail (active, noaccess, nopop, no accountStatus) */
  VL_DISABLED = 2,   /* accountStatus disabled: bounced (5.2.1) */
  VL_DELETED = 3,    /* accountStatus deleted: bounced (5.1.1) */
  VL_TEMP = -1,      /* LDAP down, slow or refusing: cannot tell */
  VL_UNUSABLE = -2   /* no LDAP client here (library missing, no server listed) */
};

/* valldap_configured - 1 control/ldapserver exists, 0 it does not (LDAP is not the backend),
 * -1 it is unreadable. The other control files are read by the first lookup (unreadable:
 * VL_TEMP) */
int valldap_configured(void);

/* valldap_lookup - the address (len bytes) as qmail-ldap's qmail-verify/qmail-lspawn look it
 * up: the address, then user-ext-catchall forms, catchall@domain and @domain. One of VL_* */
int valldap_lookup(const char *addr, size_t len);

/* valldap_exists - for SENDERCHECK (callable without valldap_configured first; cwd the qmail
 * home): 1 an entry takes mail, 0 no entry or disabled/deleted (the local lookup is not asked:
 * valuser_lookup does both), -1 cannot tell (LDAP down, no control/ldapserver, no libldap) */
int valldap_exists(const char *addr, size_t len);

int valldap_localdelivery(void);  /* control/ldaplocaldelivery, default 1 */

/* valldap_escape - RFC 4515: '*' '(' ')' '\' and NUL as \2a \28 \29 \5c \00; 0 out of memory */
int valldap_escape(stralloc *out, const char *s, size_t len);

/* valldap_filter - the search filter for key (len bytes) into out, NUL-terminated; 0 nomem */
int valldap_filter(stralloc *out, const char *key, size_t len);

const char *valldap_error(void);  /* why the last call gave VL_TEMP or VL_UNUSABLE */
int valldap_loaded(void);         /* was the library loaded in this process */
void valldap_reset(void);         /* close the connection, forget the settings */
#endif
