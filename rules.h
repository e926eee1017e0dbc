/* rules.h - the policy layer: global, per-domain and per-user rule sets over the session's
 * facts, giving decisions and per-recipient settings.
 *
 * Settings are how later stages learn what a recipient wants (greylisting on, spam
 * thresholds, content class...): a rule's "set NAME=VALUE" action attaches them to the
 * recipient being checked. A name not set by any rule falls back to the environment
 * (tcprules, the instruct cdb), so every setting is also settable per client.
 * Names compare case-insensitively; the registry of known names is rules_settings[]. */
#ifndef RULES_H
#define RULES_H
#include "decision.h"
#include "session.h"

/* rules_get - the value of setting name for the recipient being checked (at STAGE_RCPT), or
 * for the session before any recipient: the last matching rule's "set", else getenv(name),
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
#endif
