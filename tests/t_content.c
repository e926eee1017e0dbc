/* t_content - the per-recipient content-policy class (CONTENTCLASS) at RCPT, with a stand-in
 * for the rules engine that gives each recipient its own settings, and content_begin with no
 * setting at all (nothing to do, no descriptor opened). */
#include <stdlib.h>
#include <string.h>
#include "content.h"
#include "rules.h"
#include "tests/check.h"

/* the settings of the recipient being checked (at RCPT) and of the accepted ones (at DATA) */
static const char *const *cur;
static const char *const *acc[8];

static const char *lookup(const char *const *set, const char *name)
{
  size_t n = strlen(name);
  for (; set && *set; ++set)
    if (!strncmp(*set, name, n) && (*set)[n] == '=') return *set + n + 1;
  return 0;
}
const char *rules_get(const char *name) { return lookup(cur, name); }
const char *rules_get_rcpt(unsigned i, const char *name) { return i < 8 ? lookup(acc[i], name) : 0; }
const struct rules_setting rules_settings[] = {{0, 0}};

static const char *const strict[] = {"CONTENTCLASS=1", "ATTACHBLOCK=1", "SPAMREJECT=5", 0};
static const char *const strict2[] = {"CONTENTCLASS=1", "ATTACHBLOCK=1", "SPAMREJECT=5", 0};
static const char *const lax[] = {"CONTENTCLASS=1", "SPAMTAG=5", 0};
static const char *const none[] = {"CONTENTCLASS=1", 0};
static const char *const off[] = {"ATTACHBLOCK=1", 0};

static struct session s;

static int rcpt(const char *const *set)
{
  struct decision d;
  cur = set;
  d = content_rcpt(&s);
  if (!d.code) acc[s.nrcpt++] = set;
  return d.code;
}

int main(void)
{
  struct decision d;
  int on = 1;
  check_long("first recipient sets the class", rcpt(strict), 0);
  check_long("same settings, same class", rcpt(strict2), 0);
  check_long("other settings: 452", rcpt(lax), 452);
  check_long("no content settings is a class too", rcpt(none), 452);
  cur = lax;
  d = content_rcpt(&s);
  check_str("esc 4.5.3", d.esc, "4.5.3");
  check_str("reason", d.reason, "contentclass");
  s.nrcpt = 0;
  check_long("new transaction: the first decides again", rcpt(lax), 0);
  check_long("then the strict one is deferred", rcpt(strict), 452);
  s.nrcpt = 0;
  check_long("CONTENTCLASS off: no split", rcpt(off), 0);
  check_long("CONTENTCLASS on for a later recipient: split", rcpt(strict), 452);
  s.nrcpt = 0;
  check_long("CONTENTCLASS off for both: no split", rcpt(off), 0);
  check_long("CONTENTCLASS off for both: no split (2)", rcpt(off), 0);

  s.nrcpt = 1;
  acc[0] = none;
  d = content_begin(&s, &on, 0, 0);
  check(d.code == 0 && on == 0, "no content setting: off", "code %d on %d", d.code, on);
  return check_done();
}
