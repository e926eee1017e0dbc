/* dnsbl.h - DNS facts and checks through c-ares: rDNS and forward confirmation, DNSBL/DNSWL
 * scores, the sender domain (RETURNMXCHECK); all lookups in parallel on one channel */
#ifndef DNSBL_H
#define DNSBL_H
#include <stddef.h>
#include <stralloc.h>
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
/* dnsbl_returnmx - STAGE_MAIL after dnsbl_mail: RETURNMXCHECK's verdict, 554 or 421 */
struct decision dnsbl_returnmx(struct session *s);
/* dnsbl_header - in tag-only mode (RBLONLYHEADER, DNSBLTAG) the "X-RBL: ...\n" header line
 * for a listed client, else 0 */
const char *dnsbl_header(void);

/* facts for the rules engine: dnsbl_want (before dnsbl_start) asks for the PTR (1) or the
 * PTR and its forward confirmation (2) even when no DNS check needs them; dnsbl_wait waits
 * (within the budget) for the client lookups; dnsbl_zones lists the zones that list the
 * client, NUL-terminated each */
void dnsbl_want(int want);
void dnsbl_wait(void);
int dnsbl_zones(stralloc *out);
/* lookups for other modules on the same channel and poll loop (switches.c: RBL, DNSBLLIST) */
#define DNSBL_EXTRA_MAX 64
enum { DNSBL_X_PENDING = 0, DNSBL_X_LISTED = 1, DNSBL_X_NOT = 2, DNSBL_X_FAIL = 3 };
struct dnsbl_answer {
  int state;                /* DNSBL_X_* of the A query */
  int n;                    /* A records in a[] */
  unsigned char a[8][4];
  char txt[201];            /* the TXT record made printable, when asked for */
  int txtstate;             /* DNSBL_X_* of the TXT query (LISTED: a non-empty TXT) */
};
/* dnsbl_extra - send the A (and with txt the TXT) query for name in the current round (the
 * first call after a wait starts one); the index of its answer, or -1 (no channel, too many) */
int dnsbl_extra(const char *name, int txt);
/* dnsbl_extra_wait - wait for the round's answers, at most DNSBUDGET ms from its first query;
 * every answer so far by index (what did not come is DNSBL_X_FAIL) */
const struct dnsbl_answer *dnsbl_extra_wait(void);

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
