/* t_switches - switches.c on hand-filled sessions in scratch qmail homes: the environment scan
 * and the table of known-but-unimplemented names, the greeting decisions, the relay-probe
 * test, sagredo's regex lists (negation, case, substring), qmail-ldap's address maps
 * (exact, @domain, user@, catchall), each check's exact reply, goodmailfrom/goodmailaddr
 * bypasses, and the qmail-ldap-only bounce rule staying off without qmail-ldap switches.
 * Control files are read once per process, so each fixture runs in a child. */
#include <sys/wait.h>
#include <regex.h>
#include "stock.h"
#include "switches.h"
#include "check.h"

static struct session s;

static void set(stralloc *sa, const char *x)
{
  stralloc_copys(sa, x);
  stralloc_0(sa);
  --sa->len;
}

/* expect - a decision against the wanted code (0 none) and, for refusals, esc and text */
static void expect(const char *name, struct decision d, int code, const char *esc, const char *text)
{
  if (d.code != code) { check(0, name, "code %d, want %d (%s)", d.code, code, d.text ? d.text : ""); return; }
  if (!code) { check(1, name, "%s", ""); return; }
  if ((d.esc || esc) && (!d.esc || !esc || strcmp(d.esc, esc)))
    check(0, name, "esc %s, want %s", d.esc ? d.esc : "(none)", esc ? esc : "(none)");
  else if (!d.text || strcmp(d.text, text))
    check(0, name, "text %s, want %s", d.text ? d.text : "(none)", text);
  else if (!d.qmail) check(0, name, "not qmail style");
  else if (!d.reason || !*d.reason) check(0, name, "no reason for the log");
  else check(1, name, "%s", "");
}

static void env(char *const *e)
{
  switches_init_env(e);
}

static void fixture(const char *name)
{
  if (chdir(check_dir) == -1 || mkdir(name, 0755) == -1 || chdir(name) == -1 ||
      mkdir("control", 0755) == -1) {
    check(0, name, "fixture: %s", strerror(errno));
    _exit(1);
  }
  memset(&s, 0, sizeof s);
  s.remoteip = "192.0.2.7";
  s.remotehost = "unknown";
  set(&s.helo, "");
  set(&s.mailfrom, "");
}

static void in_child(void (*fn)(void), const char *name)
{
  int st;
  pid_t pid;
  fflush(stdout);
  pid = fork();
  if (pid == -1) { check(0, name, "fork failed"); return; }
  if (!pid) {
    check_npass = check_nfail = 0;
    fn();
    fflush(stdout);
    _exit(check_nfail ? 1 : 0);
  }
  if (waitpid(pid, &st, 0) == -1) { check(0, name, "waitpid failed"); return; }
  if (WIFSIGNALED(st)) check(0, name, "child killed by signal %d", WTERMSIG(st));
  else if (WEXITSTATUS(st) > 1) check(0, name, "child exit %d", WEXITSTATUS(st));
  else if (WEXITSTATUS(st) == 1) ++check_nfail;
}

/* ---- pure parts */

static void relayprobe(void)
{
  static const struct { const char *a; int probe; } t[] = {
    {"u@example.test", 0}, {"u%v@example.test", 1}, {"a@b@example.test", 1},
    {"host!u@example.test", 1}, {"u@ex%ample.test", 0}, {"noat", 0}, {"", 0},
    {"u!x", 1},  /* no @: the whole address is before it */
  };
  size_t i;
  for (i = 0; i < sizeof t / sizeof t[0]; ++i) {
    char n[100];
    snprintf(n, sizeof n, "relayprobe %s", t[i].a);
    check(switches_relayprobe_test(t[i].a, strlen(t[i].a)) == t[i].probe, n, "want %d", t[i].probe);
  }
}

#define L(x) x, sizeof x - 1
static void regex(void)
{
  const char *w;
  check(switches_regex_test(L("spam\\.test$\0"), "a@SPAM.test", &w) == 1, "regex case-insensitive", "%s", "");
  check(switches_regex_test(L("spam\\.test$\0"), "a@spam.test.org", &w) == 0, "regex anchored by $", "%s", "");
  check(switches_regex_test(L("am\\.te\0"), "a@spam.test.org", &w) == 1, "regex unanchored", "%s", "");
  check(switches_regex_test(L("@example.com\0"), "a@exampleXcom.net", &w) == 1,
        "regex: a classic qmail line is a regex", "%s", "");
  check(switches_regex_test(L("!\\.test$\0"), "a@b.org", &w) == 1 && !strcmp(w, "!\\.test$"),
        "regex ! negates: no match refuses", "which %s", w ? w : "(none)");
  check(switches_regex_test(L("!\\.test$\0"), "a@b.test", &w) == 0, "regex ! negates: match passes", "%s", "");
  check(switches_regex_test(L("(\0x\0"), "x", &w) == 1 && !strcmp(w, "x"),
        "regex: a bad pattern is skipped", "%s", "");
  check(switches_regex_test(L("!(\0"), "x", &w) == 0, "regex: a bad negated pattern decides nothing",
        "%s", "");
  {
    /* the fast matcher against regcomp/regexec itself, on patterns and texts chosen to hit
     * anchors, escapes, . and .*, case and backtracking */
    static const char *const pats[] = {
      "^spam@", "@example\\.com$", "^user[0-9]+@", "a.c", ".*@spam\\.test$", "^$", "x.*y.*z",
      "^a.*b$", "\\.", "ab*c", "^ab?c", "a|b", "^[^@]+$", "dyn-.*\\.isp\\.example$", "^.*$",
      "a\\$b", "$x", "\\d", "^mx.example.test$", "Ex.Am", "^.", ".$", "..*", "a{2}",
    };
    static const char *const texts[] = {
      "", "spam@x.test", "SPAM@X.TEST", "a@example.com", "a@exampleXcom", "user12@x", "abc",
      "aXc", "q@spam.test", "q@spam.test.org", "xyz", "x1y2z3", "ab", "aXXb", "a.b", "ac",
      "abbc", "dyn-1-2.isp.example", "a$b", "mx.example.test", "mxXexampleYtest", "aa",
    };
    size_t i, j;
    int bad = 0;
    for (i = 0; i < sizeof pats / sizeof pats[0]; ++i)
      for (j = 0; j < sizeof texts / sizeof texts[0]; ++j) {
        regex_t re;
        int want, got;
        char line[64];
        if (regcomp(&re, pats[i], REG_EXTENDED | REG_ICASE | REG_NOSUB)) continue;
        want = regexec(&re, texts[j], 0, 0, 0) == 0;
        regfree(&re);
        snprintf(line, sizeof line, "%s", pats[i]);
        got = switches_regex_test(line, strlen(line) + 1, texts[j], &w);
        if (got != want) {
          check(0, "fast regex agrees with regexec", "pattern %s text %s: got %d want %d (fast %d)",
                pats[i], texts[j], got, want, switches_regex_fast(pats[i]));
          bad = 1;
        }
      }
    if (!bad) check(1, "fast regex agrees with regexec", "%s", "");
    {
      /* random patterns of the fast subset (and some outside it) against random texts */
      static const char *const atoms[] = {"a", "b", "A", ".", "-", "x", "[ab]", "[^a]", "[a-c]",
                                          "[B-D]", "[]a]", "[a-]", "\\.", "\\-", "[0-9]", "1",
                                          "ab", "bA", "|", "(a", ")", "[[:alpha:]]", "c", "ba",
                                          "a{2}", "b{1,2}", "x{0,1}1", "\\{"};
      static const char quant[] = "\0\0\0*+?";
      static const char alpha[] = "abAB.-x1cC]{}2";
      unsigned seed = 12345;
      int k, fails = 0, fast = 0;
      for (k = 0; k < 40000 && fails < 5; ++k) {
        char pat[96], text[20];
        size_t pl = 0, tl, m;
        int na, got, want;
        regex_t re;
        seed = seed * 1103515245u + 12345u;
        if (seed >> 28 & 1) pat[pl++] = '^';
        for (na = (int)(seed >> 20 & 3) + 1; na-- > 0;) {
          const char *at;
          char q;
          seed = seed * 1103515245u + 12345u;
          at = atoms[(seed >> 16) % (sizeof atoms / sizeof atoms[0])];
          q = quant[(seed >> 8 & 7) % 6];
          memcpy(pat + pl, at, strlen(at));
          pl += strlen(at);
          if (q) pat[pl++] = q;
        }
        if (seed >> 29 & 1) pat[pl++] = '$';
        pat[pl] = 0;
        seed = seed * 1103515245u + 12345u;
        tl = seed >> 24 & 15;
        for (m = 0; m < tl; ++m) {
          seed = seed * 1103515245u + 12345u;
          text[m] = alpha[(seed >> 16) % (sizeof alpha - 1)];
        }
        text[tl] = 0;
        if (regcomp(&re, pat, REG_EXTENDED | REG_ICASE | REG_NOSUB)) continue;
        want = regexec(&re, text, 0, 0, 0) == 0;
        regfree(&re);
        fast += switches_regex_fast(pat);
        got = switches_regex_test(pat, strlen(pat) + 1, text, &w);
        if (got != want) {
          ++fails;
          check(0, "fast regex agrees with regexec (random)", "pattern %s text %s: got %d want %d",
                pat, text, got, want);
        }
      }
      if (!fails) check(fast > 8000, "fast regex agrees with regexec (random)", "%d fast", fast);
    }
    check(switches_regex_fast("^user0@spam0\\.test$") && switches_regex_fast("@example.com") &&
          switches_regex_fast(".*\\.example\\.com$") && switches_regex_fast("^[0-9]+$") &&
          switches_regex_fast("^dyn-[0-9]+\\.isp\\.example$") && switches_regex_fast("ab*c?") &&
          !switches_regex_fast("a|b") && !switches_regex_fast("(ab)") && !switches_regex_fast("a{2}") &&
          !switches_regex_fast("[[:digit:]]") && !switches_regex_fast("\\d"),
          "fast form for literal lines, regcomp for the rest", "%s", "");
  }
}

static struct { int n; const char *names[8]; } got;
static void collect(const struct switch_known *k, void *ctx)
{
  (void)ctx;
  if (got.n < 8) got.names[got.n++] = k->name;
}

static void scan(void)
{
  static char *e1[] = {"PATH=/bin", "NOLOCAL=", "NOBOUNCE=", "SPFBEHAVIOR=3", "NOLOCAL=again",
                       "TCPREMOTEIP=1.2.3.4", "RBL=", "CHKUSER_MBXQUOTA=90", 0};
  struct decision d;
  stralloc me = {0};
  int n = 0;
  n = switches_ignored(e1, collect, 0);
  check(n == 3 && !strcmp(got.names[0], "NOLOCAL") && !strcmp(got.names[1], "SPFBEHAVIOR") &&
        !strcmp(got.names[2], "CHKUSER_MBXQUOTA"), "ignored: each name once", "n=%d", n);
  {
    static char *e2[] = {"550GREETING=", 0};
    stralloc_copys(&me, "mx.test");
    env(e2);
    check(switches_greeting(&d, &me) == 1, "550GREETING empty: on", "%s", "");
    expect("550GREETING default text", d, 554, 0,
           "mx.test Sorry, your mail was administratively denied. (#5.7.1)");
    check(!d.drop, "550GREETING: no drop without SMTP550DISCONNECT", "%s", "");
    expect("550GREETING: HELO gets 503", switches_restricted("HELO"), 503, "5.5.1",
           "bad sequence of commands");
  }
  {
    static char *e3[] = {"421GREETING=go away\r\nnow", "550GREETING=no", "SMTP550DISCONNECT=0", 0};
    env(e3);
    switches_greeting(&d, &me);
    expect("550 wins over 421", d, 554, 0, "mx.test no");
    check(d.drop == 1, "SMTP550DISCONNECT (even =0) drops", "%s", "");
    expect("421GREETING: HELO gets 421", switches_restricted("ehlo"), 421, "4.3.2",
           "Service temporarily not available");
    expect("421GREETING: MAIL gets 503", switches_restricted("MAIL"), 503, "5.5.1",
           "bad sequence of commands");
    check(switches_disconnect() == 1, "SMTP550DISCONNECT set", "%s", "");
  }
  {
    static char *e4[] = {"421GREETING=go away\r\nnow", 0};
    env(e4);
    switches_greeting(&d, &me);
    expect("421GREETING text made printable", d, 421, 0, "mx.test go away??now");
  }
  {
    static char *e5[] = {"PATH=/bin", 0};
    env(e5);
    check(switches_greeting(&d, &me) == 0 && switches_disconnect() == 0, "no switch: no greeting", "%s", "");
  }
}

/* ---- checks over control files */

static void mail(const char *from) { set(&s.rcpt, from); }

static void mailchecks(void)
{
  static char *e[] = {"SANITYCHECK=", "NOBOUNCE=", 0};
  fixture("mail");
  check_writes("control/goodmailfrom", "good@nodot\n@gooddomain\n");
  check_writes("control/badmailfrom-unknown", "@spam.test\nbad@\n");
  env(e);
  mail("");
  expect("NOBOUNCE <>", switches_nobounce(&s), 554, 0, "RFC2821 bounces are administratively denied");
  mail("#@[]");
  expect("NOBOUNCE #@[]", switches_nobounce(&s), 554, 0, "RFC2821 bounces are administratively denied");
  expect("SANITYCHECK skips bounces", switches_sanity(&s), 0, 0, 0);
  mail("noat");
  expect("SANITYCHECK no @", switches_sanity(&s), 554, 0, "mailfrom without @ is administratively denied");
  mail("@x.test");
  expect("SANITYCHECK no user", switches_sanity(&s), 554, 0,
         "mailfrom without user or domain part is administratively denied");
  mail("u@");
  expect("SANITYCHECK no domain", switches_sanity(&s), 554, 0,
         "mailfrom without user or domain part is administratively denied");
  mail("u@localhost");
  expect("SANITYCHECK no dot", switches_sanity(&s), 554, 0,
         "mailfrom without . in domain part is administratively denied");
  mail("good@nodot");
  expect("SANITYCHECK goodmailfrom exact", switches_sanity(&s), 0, 0, 0);
  mail("x@gooddomain");
  expect("SANITYCHECK goodmailfrom @domain", switches_sanity(&s), 0, 0, 0);
  mail("u@ok.test");
  expect("SANITYCHECK ok", switches_sanity(&s), 0, 0, 0);
  mail("x@spam.test");
  expect("badmailfrom-unknown @domain", switches_bmfunknown(&s), 553, "5.7.1",
         "sorry, your mail from a host [192.0.2.7] without valid reverse DNS was administratively denied");
  mail("bad@any.test");
  expect("badmailfrom-unknown user@", switches_bmfunknown(&s), 553, "5.7.1",
         "sorry, your mail from a host [192.0.2.7] without valid reverse DNS was administratively denied");
  s.remotehost = "host.example.test";
  expect("badmailfrom-unknown: known host passes", switches_bmfunknown(&s), 0, 0, 0);
  s.remotehost = "UNKNOWN";
  expect("badmailfrom-unknown: UNKNOWN is unknown", switches_bmfunknown(&s), 553, "5.7.1",
         "sorry, your mail from a host [192.0.2.7] without valid reverse DNS was administratively denied");
}

static void nullsenders(void)
{
  static char *e[] = {"REJECTNULLSENDERS=", 0};
  fixture("nullsenders");
  check_writes("control/rejectnullsenders", "1\n");
  env(e);  /* sagredo: the variable wins, and "" scans as 0 */
  mail("");
  expect("REJECTNULLSENDERS= off", switches_nullsenders(&s), 0, 0, 0);
}

static void nullsenders_file(void)
{
  static char *e[] = {"PATH=/bin", 0};
  struct decision d;
  fixture("nullsenders_file");
  check_writes("control/rejectnullsenders", "1\n");
  env(e);
  mail("u@x.test");
  expect("rejectnullsenders: a sender passes", switches_nullsenders(&s), 0, 0, 0);
  mail("");
  d = switches_nullsenders(&s);
  expect("control/rejectnullsenders", d, 421, "4.3.0", "null senders temporarily denied");
  check(d.drop, "rejectnullsenders drops", "%s", "");
}

static void rcptchecks(void)
{
  static char *e[] = {"BLOCKRELAYPROBE=", 0};
  fixture("rcpt");
  check_writes("control/badrcptto", "abuse@example.test\n@bad.test\npostmaster@\n");
  check_writes("control/badhelo", "^friend$\n!\\.\n");
  check_writes("control/goodmailaddr", "catchall@g.test\nu-catchall@h.test\n");
  env(e);
  set(&s.rcpt, "a%b@example.test");
  expect("BLOCKRELAYPROBE", switches_relayprobe(&s), 553, "5.7.1", "sorry, we don't relay for [192.0.2.7]");
  set(&s.rcpt, "abuse@example.test");
  expect("badrcptto exact", switches_badrcptto(&s), 553, "5.7.1", "sorry, mail to that recipient is not accepted");
  set(&s.rcpt, "x@BAD.test");
  expect("badrcptto @domain", switches_badrcptto(&s), 553, "5.7.1", "sorry, mail to that recipient is not accepted");
  set(&s.rcpt, "postmaster@any.test");
  expect("badrcptto user@", switches_badrcptto(&s), 553, "5.7.1", "sorry, mail to that recipient is not accepted");
  set(&s.rcpt, "abuse@example.testx");
  expect("badrcptto: not a regex without QREGEX", switches_badrcptto(&s), 0, 0, 0);
  expect("badhelo: no HELO said", switches_badhelo(&s), 0, 0, 0);
  set(&s.helo, "FRIEND");
  expect("badhelo regex", switches_badhelo(&s), 553, "5.7.1", "sorry, your HELO host name has been denied");
  set(&s.helo, "nodots");
  expect("badhelo !regex", switches_badhelo(&s), 553, "5.7.1", "sorry, your HELO host name has been denied");
  set(&s.helo, "mail.example.test");
  expect("badhelo passes", switches_badhelo(&s), 0, 0, 0);
  /* the bounce rule: BLOCKRELAYPROBE makes this a qmail-ldap client */
  set(&s.mailfrom, "");
  switches_txn(&s);
  expect("badbounce first", switches_badbounce(&s), 0, 0, 0);
  expect("badbounce second", switches_badbounce(&s), 550, "5.7.1",
         "sorry, I don't accept bounce messages with more than one recipient. Go read RFC2821.");
  switches_txn(&s);
  expect("badbounce: new transaction", switches_badbounce(&s), 0, 0, 0);
}

static void stockmode(void)
{
  static char *e[] = {"PATH=/bin", 0};
  fixture("stock");
  check_writes("control/rejectrelaytest", "0\n");
  env(e);
  set(&s.rcpt, "a%b@example.test");
  expect("no switch: relay probe passes", switches_relayprobe(&s), 0, 0, 0);
  set(&s.mailfrom, "");
  switches_txn(&s);
  switches_badbounce(&s);
  expect("no qmail-ldap switch: bounces to two recipients pass", switches_badbounce(&s), 0, 0, 0);
  expect("no brtlimit", switches_brtlimit(&s), 0, 0, 0);
}

static void sagredo(void)
{
  static char *e[] = {"QREGEX=1", "BRTLIMIT=2", 0};
  struct decision d;
  fixture("sagredo");
  check_writes("control/rejectrelaytest", "1\n");
  check_writes("control/badmailfrom", "^spam@\n");
  check_writes("control/badrcptto", "^abuse@\n");
  check_writes("control/badrcpttonorelay", "^x@\n");
  if (stock_init() == -1) check(0, "stock_init", "failed");
  env(e);
  set(&s.rcpt, "a!b@example.test");
  expect("rejectrelaytest", switches_relayprobe(&s), 553, "5.7.1", "we don't relay");
  set(&s.mailfrom, "SPAM@x.test");
  expect("QREGEX badmailfrom", switches_badmailfrom(&s), 553, "5.7.1", "sorry, your envelope sender has been denied");
  set(&s.mailfrom, "");
  expect("QREGEX badmailfrom: <> never checked", switches_badmailfrom(&s), 0, 0, 0);
  set(&s.rcpt, "abuse@y.test");
  expect("QREGEX badrcptto", switches_badrcptto(&s), 553, "5.7.1", "sorry, your envelope recipient has been denied");
  set(&s.rcpt, "x@y.test");
  expect("QREGEX badrcpttonorelay", switches_badrcptto(&s), 553, "5.7.1", "sorry, your envelope recipient has been denied");
  s.relayclient = "";
  expect("QREGEX badrcpttonorelay: RELAYCLIENT passes", switches_badrcptto(&s), 0, 0, 0);
  s.rcpt_bad = 1;
  expect("BRTLIMIT below", switches_brtlimit(&s), 0, 0, 0);
  s.rcpt_bad = 2;
  d = switches_brtlimit(&s);
  expect("BRTLIMIT reached", d, 421, "4.3.0", "too many invalid addresses, goodbye");
  check(d.drop, "BRTLIMIT drops", "%s", "");
}

static void goodaddr(void)
{
  static char *e[] = {"SENDERCHECK=strict", 0};
  static const char *good[] = {"x@g.test", "X@G.TEST", "u-foo@h.test", "u-a-b@h.test", 0};
  static const char *bad[] = {"u@h.test", "v-foo@h.test", "x@g.test.org", 0};
  const char *const *a;
  fixture("goodaddr");
  check_writes("control/goodmailaddr", "catchall@g.test\nu-catchall@h.test\n");
  env(e);
  for (a = good; *a; ++a) {
    char n[100];
    snprintf(n, sizeof n, "goodmailaddr catchall %s", *a);
    mail(*a);
    expect(n, switches_sendercheck(&s), 0, 0, 0);
  }
  for (a = bad; *a; ++a) {
    char n[100];
    snprintf(n, sizeof n, "SENDERCHECK=strict, not local %s", *a);
    mail(*a);
    expect(n, switches_sendercheck(&s), 554, 0,
           "refused mailfrom because valid local sender address required");
  }
}

static void greetcheck(void)
{
  static char *e[] = {"421GREETING=busy", 0};
  static stralloc me;
  struct decision d;
  fixture("greetcheck");
  env(e);
  expect("no me yet: no greeting check", switches_greetcheck(&s), 0, 0, 0);
  stralloc_copys(&me, "mx.test");
  switches_init(&me);  /* the real environment has no greeting switch */
  d = switches_greetcheck(&s);
  check(d.code == 0, "greetcheck follows the environment read at init", "code %d", d.code);
  switches_init_env(e);
  d = switches_greetcheck(&s);
  expect("greetcheck 421GREETING", d, 421, 0, "mx.test busy");
  check(switches_restricts(&d), "a greeting decision restricts the session", "%s", "");
  d.reason = "rbl";
  check(!switches_restricts(&d), "another refusal does not", "%s", "");
}

static void unreadable(void)
{
  static char *e[] = {"PATH=/bin", 0};
  fixture("unreadable");
  mkdir("control/badrcptto", 0755);  /* a directory: read error */
  env(e);
  set(&s.rcpt, "u@x.test");
  expect("badrcptto unreadable: 451", switches_badrcptto(&s), 451, "4.3.0", "unable to read controls");
}

int main(void)
{
  check_tmpdir("switches");
  check(switches_selftest() == 0, "every switch name passes the scan's first-letter filter", "%s", "");
  relayprobe();
  regex();
  in_child(scan, "scan");
  in_child(mailchecks, "mailchecks");
  in_child(nullsenders, "nullsenders");
  in_child(nullsenders_file, "nullsenders_file");
  in_child(rcptchecks, "rcptchecks");
  in_child(stockmode, "stockmode");
  in_child(sagredo, "sagredo");
  in_child(unreadable, "unreadable");
  in_child(goodaddr, "goodaddr");
  in_child(greetcheck, "greetcheck");
  return check_done();
}
