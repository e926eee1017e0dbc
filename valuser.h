/* valuser.h - does this local recipient exist: qmail, vpopmail and SQL backends */
#ifndef VALUSER_H
#define VALUSER_H
#include <stddef.h>
#include "decision.h"
#include "session.h"

#define VALUSER_CDB "control/mxguard-users.cdb"  /* written by mxguard-users; used when present */
#define VALUSER_SQLCONF "control/vpopmail.mysql"  /* host|port|user|password|db */

enum { VU_NO = 0, VU_YES = 1, VU_TEMP = -1, VU_SKIP = 2 /* not local, or no backend: unchecked */ };

struct vu_result {
  int r;                /* VU_NO, VU_YES, VU_TEMP, VU_SKIP */
  const char *backend;  /* "qmail", "vpopmail", "sql", "cdb", "control" */
  const char *why;      /* short fixed token: "nofile", "novpasswd", "bounceflag", "open", ... */
  const char *detail;   /* the file or server message behind a VU_TEMP (may hold client bytes) */
};

/* valuser_check - the RCPT check (smtpd.c's table): 0 exists or unchecked, 550 5.1.1 no such
 * user, 451 4.3.0 cannot tell, 421 after BADRCPTLIMIT unknown recipients */
struct decision valuser_check(struct session *s);

/* valuser_delay_ms - the wait smtpd.c adds before a 250 to RCPT once BADRCPTSOFT unknown
 * recipients were refused in this session (the refusals carry it in delay_ms) */
unsigned valuser_delay_ms(void);

/* valuser_lookup - the question without switches: addr (len bytes, no NUL needed) */
void valuser_lookup(const char *addr, size_t len, struct vu_result *res);

/* valuser_live - as valuser_lookup but never through VALUSER_CDB (for mxguard-users) */
void valuser_live(const char *addr, size_t len, struct vu_result *res);

/* valuser_getpwnam - how passwd users are found: /etc/passwd alone by default (no NSS in the
 * static mxguard-smtpd); mxguard-users sets it to getpwnam */
struct passwd;
extern struct passwd *(*valuser_getpwnam)(const char *name);

/* valuser_reset - forget settings, counters and control files (tests; mxguard-users) */
void valuser_reset(void);
#endif
