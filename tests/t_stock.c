/* t_stock - stock.c, the checks stock qmail-smtpd makes, on a hand-filled struct session in
 * scratch qmail homes: rcpthosts and morercpthosts.cdb (compat §2.3), RELAYCLIENT, badmailfrom
 * (§2.4), the hop limit, databytes, RCPT_MAX, and the read errors that must give 421 (never a
 * 5xx). stock_init reads its files once per process, so each fixture runs in a child. */
#include <sys/wait.h>
#include <cdb_make.h>
#include "stock.h"
#include "check.h"

#define S(x) x, sizeof x - 1

static struct session s;

static void set(stralloc *sa, const char *x)
{
  stralloc_copys(sa, x);
  stralloc_0(sa);
  --sa->len;
}

/* expect - a decision against the wanted code (0 none) and, for refusals, the exact text */
static void expect(const char *name, struct decision d, int code, const char *esc, const char *text,
                   int qmail, int drop)
{
  if (d.code != code) { check(0, name, "code %d, want %d", d.code, code); return; }
  if (!code) { check(1, name, "%s", ""); return; }
  if (!d.esc || strcmp(d.esc, esc)) check(0, name, "esc %s, want %s", d.esc ? d.esc : "(none)", esc);
  else if (!d.text || strcmp(d.text, text))
    check(0, name, "text %s, want %s", d.text ? d.text : "(none)", text);
  else if (d.qmail != qmail) check(0, name, "qmail style %d, want %d", d.qmail, qmail);
  else if (d.drop != drop) check(0, name, "drop %d, want %d", d.drop, drop);
  else if (!d.reason || !*d.reason) check(0, name, "no reason for the log");
  else check(1, name, "%s", "");
}

#define RH_TEXT "sorry, that domain isn't in my list of allowed rcpthosts"
#define BMF_TEXT "sorry, your envelope sender is in my badmailfrom list"

static void rcpt_is(const char *name, const char *rcpt, int allowed)
{
  char n[200];
  snprintf(n, sizeof n, "rcpthosts %s", name);
  set(&s.rcpt, rcpt);
  expect(n, stock_rcpthosts(&s), allowed ? 0 : 553, "5.7.1", RH_TEXT, 1, 0);
}

static void from_is(const char *name, const char *from, int bad)
{
  char n[200];
  snprintf(n, sizeof n, "badmailfrom %s", name);
  set(&s.mailfrom, from);
  expect(n, stock_badmailfrom(&s), bad ? 553 : 0, "5.7.1", BMF_TEXT, 1, 0);
}

static int make_cdb(const char *fn, const char *const *keys)
{
  static struct cdb_make cm;
  int fd = open(fn, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd == -1 || cdb_make_start(&cm, fd) == -1) return -1;
  for (; *keys; ++keys)
    if (cdb_make_add(&cm, (const unsigned char *)*keys, strlen(*keys), (const unsigned char *)"",
                     0) == -1)
      return -1;
  if (cdb_make_finish(&cm) == -1) return -1;
  return close(fd);
}

/* fixture - a fresh qmail home named name with these control files (0: absent) */
static void fixture(const char *name, const char *rh, const char *const *mrh, const char *bmf)
{
  if (chdir(check_dir) == -1 || mkdir(name, 0755) == -1 || chdir(name) == -1 ||
      mkdir("control", 0755) == -1) {
    check(0, name, "fixture: %s", strerror(errno));
    _exit(1);
  }
  if (rh) check_writes("control/rcpthosts", rh);
  if (mrh && make_cdb("control/morercpthosts.cdb", mrh) == -1) check(0, name, "fixture: cdb");
  if (bmf) check_writes("control/badmailfrom", bmf);
}

static const char *const mrhkeys[] = {"more.test", ".moresub.test", "MixedCase.test", 0};

static void full(void)
{
  int r;
  fixture("full", "example.test\n.sub.example.test\nUPPER.Test\nwith-cr.test\r\n  lead.test\n"
          "#comment.test\n", mrhkeys,
          "bad@evil.test\n@spam.test\nUPPER@Bad.Test\n@\n  lead@bad.test\n# x@comment.test\n");
  r = stock_init();
  check(r == 0, "stock_init full", "return %d (%s)", r, stock_error() ? stock_error() : "");
  rcpt_is("exact", "u@example.test", 1);
  rcpt_is("case_insensitive", "u@EXAMPLE.Test", 1);
  rcpt_is("entry_upper_case", "u@upper.test", 1);
  rcpt_is("subdomain_of_exact_entry", "u@x.example.test", 0);
  rcpt_is("dot_entry_subdomain", "u@a.sub.example.test", 1);
  rcpt_is("dot_entry_deeper", "u@a.b.sub.example.test", 1);
  rcpt_is("dot_entry_not_itself", "u@sub.example.test", 0);
  rcpt_is("suffix_needs_dot", "u@xexample.test", 0);
  rcpt_is("longer", "u@example.testx", 0);
  rcpt_is("trailing_dot_not_folded", "u@example.test.", 0);
  rcpt_is("cr_entry_does_not_match", "u@with-cr.test", 0);
  rcpt_is("leading_blank_entry_does_not_match", "u@lead.test", 0);
  rcpt_is("comment_not_entry", "u@comment.test", 0);
  rcpt_is("no_at_allowed", "postmaster", 1);
  rcpt_is("empty_allowed", "", 1);
  rcpt_is("last_at_counts", "u@remote.test@example.test", 1);
  rcpt_is("last_at_counts_reverse", "u@example.test@remote.test", 0);
  rcpt_is("percent_hack_passes", "u%remote.test@example.test", 1);
  rcpt_is("empty_domain", "u@", 0);
  rcpt_is("only_at", "@", 0);
  rcpt_is("domain_literal_is_a_string", "u@[10.1.2.3]", 0);
  rcpt_is("remote", "u@remote.test", 0);
  rcpt_is("morercpthosts_exact", "u@more.test", 1);
  rcpt_is("morercpthosts_lowercased", "u@MORE.Test", 1);
  rcpt_is("morercpthosts_dot_entry", "u@x.moresub.test", 1);
  rcpt_is("morercpthosts_dot_entry_not_itself", "u@moresub.test", 0);
  rcpt_is("morercpthosts_keys_exact_bytes", "u@mixedcase.test", 0);
  rcpt_is("morercpthosts_subdomain_of_exact", "u@a.more.test", 0);
  rcpt_is("morercpthosts_after_rcpthosts_miss", "u@x.y.moresub.test", 1);
  s.relayclient = "";
  rcpt_is("relayclient_empty_skips", "u@remote.test", 1);
  s.relayclient = "@relay.suffix";
  rcpt_is("relayclient_suffix_skips", "u@remote.test", 1);
  s.relayclient = 0;
  rcpt_is("relayclient_unset_again", "u@remote.test", 0);

  from_is("exact", "bad@evil.test", 1);
  from_is("case_insensitive", "BAD@Evil.TEST", 1);
  from_is("entry_upper_case", "upper@bad.test", 1);
  from_is("at_domain", "x@spam.test", 1);
  from_is("at_domain_case", "x@SPAM.Test", 1);
  from_is("at_domain_no_subdomains", "x@sub.spam.test", 0);
  from_is("other_user_same_domain", "x@evil.test", 0);
  from_is("longer", "bad@evil.test.x", 0);
  from_is("shorter", "bad@evil.tes", 0);
  from_is("null_sender", "", 0);
  from_is("at_line_matches_trailing_at", "x@", 1);
  from_is("leading_blank_entry_no_match", "lead@bad.test", 0);
  from_is("comment_not_entry", "x@comment.test", 0);
  from_is("last_at", "a@b@spam.test", 1);
  from_is("not_last_at", "a@spam.test@b.test", 0);
  from_is("no_at_domain_text", "spam.test", 0);
  from_is("whole_is_at_domain", "@spam.test", 1);
  s.relayclient = "";
  from_is("relayclient_does_not_bypass", "bad@evil.test", 1);
  s.relayclient = 0;

  s.hops = 0;
  expect("hops 0", stock_hops(&s), 0, 0, 0, 0, 0);
  s.hops = MAXHOPS - 1;
  expect("hops 99", stock_hops(&s), 0, 0, 0, 0, 0);
  s.hops = MAXHOPS;
  expect("hops 100", stock_hops(&s), 554, "5.4.6", "too many hops, this message is looping", 1, 0);
  s.hops = 100000;
  expect("hops 100000", stock_hops(&s), 554, "5.4.6", "too many hops, this message is looping", 1, 0);
  check_long("hops limit_is_100", MAXHOPS, 100);

  s.msgoverflow = 0;
  s.msgbytes = 1000;
  s.databytes = 1000;
  expect("databytes at_limit", stock_databytes(&s), 0, 0, 0, 0, 0);
  s.msgoverflow = 1;
  expect("databytes overflow", stock_databytes(&s), 552, "5.3.4",
         "sorry, that message size exceeds my databytes limit", 1, 0);
  s.msgoverflow = 0;

  s.nrcpt = 0;
  expect("rcptmax 0", stock_rcptmax(&s), 0, 0, 0, 0, 0);
  s.nrcpt = RCPT_MAX - 1;
  expect("rcptmax below", stock_rcptmax(&s), 0, 0, 0, 0, 0);
  s.nrcpt = RCPT_MAX;
  expect("rcptmax at", stock_rcptmax(&s), 452, "4.5.3", "too many recipients", 0, 0);
  s.nrcpt = RCPT_MAX + 5;
  expect("rcptmax over", stock_rcptmax(&s), 452, "4.5.3", "too many recipients", 0, 0);
  s.nrcpt = 0;
}

static void no_rcpthosts(void)
{
  int r;
  fixture("no_rcpthosts", 0, mrhkeys, 0);
  r = stock_init();
  check(r == 0, "stock_init no_rcpthosts", "return %d", r);
  rcpt_is("absent_allows_everything", "u@remote.test", 1);
  rcpt_is("absent_morercpthosts_ignored_listed", "u@more.test", 1);
  from_is("absent_nothing_bad", "bad@evil.test", 0);
}

static void no_control(void)
{
  int r;
  if (chdir(check_dir) == -1 || mkdir("empty_home", 0755) == -1 || chdir("empty_home") == -1)
    _exit(1);
  r = stock_init();
  check(r == 0, "stock_init no_control_dir", "return %d", r);
  rcpt_is("no_control_dir_open", "u@remote.test", 1);
  from_is("no_control_dir", "x@y.test", 0);
}

static void empty_rcpthosts(void)
{
  int r;
  fixture("empty_rcpthosts", "# nothing here\n\n", 0, "");
  r = stock_init();
  check(r == 0, "stock_init empty_rcpthosts", "return %d", r);
  rcpt_is("empty_file_rejects", "u@example.test", 0);
  rcpt_is("empty_file_no_at_ok", "postmaster", 1);
  from_is("empty_badmailfrom", "x@y.test", 0);
}

static void mrh_broken(void)
{
  int r;
  fixture("mrh_broken", "example.test\n", 0, 0);
  mkdir("control/morercpthosts.cdb", 0755);
  r = stock_init();
  check(r == 0 || r == -1, "stock_init mrh_directory", "return %d", r);
  if (r == -1) {
    check_str("stock_error mrh_directory", stock_error(), "control/morercpthosts.cdb");
    return;
  }
  set(&s.rcpt, "u@example.test");
  expect("rcpthosts mrh_directory_rcpthosts_hit", stock_rcpthosts(&s), 0, 0, 0, 0, 0);
  set(&s.rcpt, "u@remote.test");
  expect("rcpthosts mrh_directory_421", stock_rcpthosts(&s), 421, "4.3.0", "unable to read controls",
         1, 1);
}

static void mrh_junk(void)
{
  static char junk[100];
  int r;
  fixture("mrh_junk", "example.test\n", 0, 0);
  memset(junk, 'x', sizeof junk);
  check_write("control/morercpthosts.cdb", junk, sizeof junk, 0644);
  r = stock_init();
  check(r == 0, "stock_init mrh_junk", "return %d", r);
  set(&s.rcpt, "u@remote.test");
  expect("rcpthosts mrh_junk_421", stock_rcpthosts(&s), 421, "4.3.0", "unable to read controls", 1, 1);
}

static void dir_errors(void)
{
  int r;
  fixture("rcpthosts_dir", 0, 0, 0);
  mkdir("control/rcpthosts", 0755);
  r = stock_init();
  check(r == -1, "stock_init rcpthosts_directory", "return %d, want -1", r);
  check_str("stock_error rcpthosts_directory", stock_error(), "control/rcpthosts");
}

static void bmf_error(void)
{
  int r;
  fixture("badmailfrom_dir", "example.test\n", 0, 0);
  mkdir("control/badmailfrom", 0755);
  r = stock_init();
  check(r == -1, "stock_init badmailfrom_directory", "return %d, want -1", r);
  check_str("stock_error badmailfrom_directory", stock_error(), "control/badmailfrom");
}

/* many rcpthosts entries */
static void many(void)
{
  static char buf[200000];
  size_t n = 0;
  int i, ok = 1;
  for (i = 0; i < 5000; ++i) n += (size_t)sprintf(buf + n, "d%d.example\n", i);
  buf[n] = 0;
  fixture("many", buf, 0, 0);
  stock_init();
  for (i = 0; i < 5000 && ok; i += 7) {
    char a[64];
    sprintf(a, "u@D%d.Example", i);
    set(&s.rcpt, a);
    if (stock_rcpthosts(&s).code) ok = check(0, "rcpthosts many_entries", "%s refused", a);
    sprintf(a, "u@d%d.example", i + 5000);
    set(&s.rcpt, a);
    if (ok && !stock_rcpthosts(&s).code) ok = check(0, "rcpthosts many_entries", "%s allowed", a);
  }
  if (ok) check(1, "rcpthosts many_entries", "%s", "");
}

/* in_child - run one fixture in a child process; its lines go to our stdout */
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
    _exit(check_nfail ? 1 : 0);  /* _exit: the scratch directory belongs to the parent */
  }
  if (waitpid(pid, &st, 0) == -1) { check(0, name, "waitpid failed"); return; }
  if (WIFSIGNALED(st)) check(0, name, "child killed by signal %d", WTERMSIG(st));
  else if (WEXITSTATUS(st) > 1) check(0, name, "child exit %d", WEXITSTATUS(st));
  else if (WEXITSTATUS(st) == 1) ++check_nfail;
}

int main(void)
{
  check_tmpdir("stock");
  in_child(full, "fixture full");
  in_child(no_rcpthosts, "fixture no_rcpthosts");
  in_child(no_control, "fixture no_control");
  in_child(empty_rcpthosts, "fixture empty_rcpthosts");
  in_child(mrh_broken, "fixture mrh_broken");
  in_child(mrh_junk, "fixture mrh_junk");
  in_child(dir_errors, "fixture rcpthosts_dir");
  in_child(bmf_error, "fixture badmailfrom_dir");
  in_child(many, "fixture many");
  return check_done();
}
