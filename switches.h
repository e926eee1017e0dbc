/* switches.h - the qmail-ldap and sagredo switches: checks for smtpd.c's table, the
 * 550GREETING/421GREETING and SMTP550DISCONNECT hooks, and the table of switch names other
 * patches know that mxguard does not implement */
#ifndef SWITCHES_H
#define SWITCHES_H
#include <stralloc.h>
#include "decision.h"
#include "session.h"

/* switches_init - read the switches from environ in one pass (after the instruct cdb), and
 * log one "event=switch act=ignored" line for every known name that is not implemented;
 * me (control/me, else the greeting) names us in a 550GREETING/421GREETING reply */
void switches_init(const stralloc *me);
/* switches_init_env - the same over env (an environ-style array), without the log (tests) */
void switches_init_env(char *const *env);

/* switches_greeting - 550GREETING/421GREETING: *d becomes the refusal that replaces the
 * banner ("554 me text" or "421 me text", drop set with SMTP550DISCONNECT); 1, else 0 */
int switches_greeting(struct decision *d, const stralloc *me);
/* switches_greetcheck - the STAGE_CONNECT check: switches_greeting's decision, or none */
struct decision switches_greetcheck(struct session *s);
/* switches_restricts - d is such a greeting: smtpd.c enters the restricted loop after it */
int switches_restricts(const struct decision *d);
/* switches_restricted - the reply to a command after such a greeting (QUIT is smtpd.c's):
 * HELO/EHLO get 421 with 421GREETING, else everything gets 503 */
struct decision switches_restricted(const char *verb);
/* switches_disconnect - SMTP550DISCONNECT: close after every 4xx/5xx reply */
int switches_disconnect(void);

/* checks (smtpd.c's table); at STAGE_MAIL the sender is s->rcpt */
struct decision switches_txn(struct session *s);          /* MAIL: a new transaction */
struct decision switches_nullsenders(struct session *s);  /* MAIL: REJECTNULLSENDERS */
struct decision switches_bmfunknown(struct session *s);   /* MAIL: badmailfrom-unknown */
struct decision switches_nobounce(struct session *s);     /* MAIL: NOBOUNCE */
struct decision switches_sanity(struct session *s);       /* MAIL: SANITYCHECK */
struct decision switches_returnmx(struct session *s);     /* MAIL: RETURNMXCHECK (dnsbl.c) */
struct decision switches_sendercheck(struct session *s);  /* MAIL: SENDERCHECK */
struct decision switches_relayprobe(struct session *s);   /* RCPT: BLOCKRELAYPROBE, rejectrelaytest */
struct decision switches_badhelo(struct session *s);      /* RCPT: badhelo (regex) */
struct decision switches_badmailfrom(struct session *s);  /* RCPT: badmailfrom, stock or QREGEX */
struct decision switches_brtlimit(struct session *s);     /* RCPT: BRTLIMIT */
struct decision switches_badrcptto(struct session *s);    /* RCPT: badrcptto */
struct decision switches_badbounce(struct session *s);    /* RCPT: qmail-ldap's one-recipient bounces */
struct decision switches_valuser(struct session *s);      /* RCPT: goodmailaddr, then valuser */
struct decision switches_rbl(struct session *s);          /* MAIL: RBL, control/rbllist */
struct decision switches_dnsbllist(struct session *s);    /* RCPT: control/dnsbllist, DNSBLLIST */
/* switches_header - "X-RBL: ...\n" lines for RBL's addheader matches, else 0 */
const char *switches_header(void);

/* the names other qmail patches read that mxguard knows and does not implement */
struct switch_known {
  const char *name;    /* environment variable */
  const char *origin;  /* "qmail-ldap", "sagredo", "chkuser" */
  const char *what;    /* what it does there */
};
extern const struct switch_known switches_unimplemented[];  /* ends with {0, 0, 0} */

/* switches_ignored - for a configuration checker: fn() for each entry of
 * switches_unimplemented set in env (an environ-style array); returns how many */
int switches_ignored(char *const *env, void (*fn)(const struct switch_known *k, void *ctx),
                     void *ctx);

/* exposed for tests/t_switches.c */
int switches_selftest(void);  /* the quick filter of the environment scan covers every name */
int switches_relayprobe_test(const char *addr, size_t len);  /* @ % ! before the last @ */
/* switches_regex_test - sagredo's qregex over lines ("pat\0pat\0"): 1 a line matches (or a
 * "!pat" does not), 0 none; *which is the line that decided */
int switches_regex_test(const char *lines, size_t len, const char *text, const char **which);
int switches_regex_fast(const char *line);  /* 1: matched without regcomp() */
#endif
