/* rules.h - the policy layer: global, per-domain and per-user rule sets over the session's
 * facts, giving decisions and per-recipient settings.
 *
 * Settings are how later stages learn what a recipient wants (greylisting on, spam
 * thresholds, content class...): a rule's "set NAME=VALUE" action attaches them to the
 * recipient being checked. A name not set by any rule falls back to the environment
 * (tcprules, the instruct cdb), so every setting is also settable per client.
 * Names compare case-insensitively; the registry of known names is rules_settings[].
 *
 * The rules come from one cdb, control/rules.cdb, written by "mxguard-rules compile" from
 * control/rules (global), control/rules.d/DOMAIN and control/rules.d/USER@DOMAIN. */
#ifndef RULES_H
#define RULES_H
#include <stralloc.h>
#include "decision.h"
#include "session.h"

#define RULES_CDB "control/rules.cdb"
#define RULES_SRC "control/rules"
#define RULES_DIR "control/rules.d"
#define RULES_MAGIC "mxguard-rules 1"   /* value of the cdb key "V" */

/* rules_get - the value of setting name for the recipient being checked (at STAGE_RCPT), or
 * for the session before any recipient: the first matching rule's "set", else getenv(name),
 * else 0 */
const char *rules_get(const char *name);

/* rules_get_rcpt - the same for the i-th accepted recipient of this transaction (0-based;
 * for DATA-time checks), else 0 when i is out of range */
const char *rules_get_rcpt(unsigned i, const char *name);

struct rules_setting {
  const char *name;
  const char *what;   /* one line for mxguard-rules(8) and the explainer */
};
extern const struct rules_setting rules_settings[];  /* ends with {0, 0} */
int rules_setting_known(const char *name, size_t len);

/* ---- the daemon's side (smtpd.c) */

/* rules_check - the rules at stage st, as a check of smtpd.c's table. Before RCPT only the
 * global rules whose facts are all known by then run, and (DELAYREJECT, default on) their
 * refusals wait for RCPT, where every rule set of the recipient runs: mandatory global
 * rules, the user's, the domain's, the global defaults. 250 = an allow matched: smtpd.c
 * skips the later policy checks for this command. Broken or unreadable rules: 451 4.3.0. */
void rules_start(struct session *s);  /* at connect, before dnsbl_start: DNS facts wanted */
struct decision rules_connect(struct session *s);
struct decision rules_helo(struct session *s);
struct decision rules_mail(struct session *s);
struct decision rules_rcpt(struct session *s);

void rules_accepted(void);      /* the recipient just checked was accepted (250) */
void rules_newmail(void);       /* a new transaction: forget its recipients and tags */
void rules_data(void);          /* DATA: rules_get answers for the first accepted recipient */
const char *rules_tags(void);   /* header lines ("Name: value\n"...) of tag rules, or 0 */
unsigned rules_observed(void);  /* refusals observed (not applied) in this session */

/* rules_observer - who logs and counts a refusal observed (not sent): smtpd.c's observe() */
extern void (*rules_observer)(const struct decision *d);

/* rules_trace - where explain's trace lines go: set by smtpd.c when MXG_TRACE is set */
extern void (*rules_trace)(const char *what, const char *detail);

/* ---- the compiler's side (mxguard-rules, tests) */

enum { RS_MANDATORY, RS_DEFAULT, RS_DOMAIN, RS_USER };  /* where a file's rules go */

/* rules_parse_line - one source line into its compiled form appended to out[0] (the
 * mandatory set) or out[1] (everything else). origin is "file:line". 0 ok (also for
 * comments and empty lines), -1 syntax error with *err set (static text), -2 a rule that
 * must be skipped (a regex that does not compile; *err says why) */
int rules_parse_line(stralloc out[2], const char *line, const char *origin, int scope,
                     const char **err);

/* rules_dynamic_add - a dynamic-PTR pattern into the list (the cdb key "P"); 0 or -1 */
int rules_dynamic_add(stralloc *out, const char *re, const char **err);

/* rules_dump - a compiled set as text, one rule a line (mxguard-rules show, tests) */
int rules_dump(stralloc *out, const char *set, size_t len);

/* rules_error_rule - the marker of a broken set: whoever reaches it gets 451 */
int rules_error_rule(stralloc *out, const char *origin);
/* rules_optimize - merge runs of rules that differ only in their one condition's values
 * (in place); rules_early - the E/e extract of a global set; both 0 or -1 */
int rules_optimize(stralloc *set);
int rules_early(const char *set, size_t len, stralloc *out);
/* rules_header - the cdb key "H" the daemon reads: magic, facts used, G g E e */
int rules_header(stralloc *out, unsigned used, const stralloc sets[4]);
/* rules_facts_used - the facts a compiled set reads (bit 1<<fact), and RULES_EARLY when a rule
 * is evaluated before RCPT; kept in the cdb key "H" */
#define RULES_EARLY (1u << 31)
unsigned rules_facts_used(const char *set, size_t len);
#endif
