/* t_queue - queue.c: the exit-code table (compat §6.2), the Received date, and qq_open/qq_put/
 * qq_close end to end with QMAILQUEUE set to small shell scripts written at run time: the exact
 * message and envelope bytes qmail-queue reads, the custom error text on fd 6 (exit 82), exec
 * failure, a crash, a qmail-queue that stops reading, a local failure; and qq_received's line
 * byte for byte (compat §5). */
#include <signal.h>
#include <time.h>
#include "queue.h"
#include "check.h"

/* ---- the table ---- */

struct ecase {
  int code;
  const char *want;
};

static const struct ecase ecases[] = {
  {11, "Denvelope address too long for qq (#5.1.3)"},
  {115, "Denvelope address too long for qq (#5.1.3)"},
  {31, "Dmail server permanently rejected message (#5.3.0)"},
  {12, "Dqq permanent problem (#5.3.0)"},
  {20, "Dqq permanent problem (#5.3.0)"},
  {30, "Dqq permanent problem (#5.3.0)"},
  {32, "Dqq permanent problem (#5.3.0)"},
  {40, "Dqq permanent problem (#5.3.0)"},
  {51, "Zqq out of memory (#4.3.0)"},
  {52, "Zqq timeout (#4.3.0)"},
  {53, "Zqq write error or disk full (#4.3.0)"},
  {54, "Zqq read error (#4.3.0)"},
  {55, "Zqq unable to read configuration (#4.3.0)"},
  {56, "Zqq trouble making network connection (#4.3.0)"},
  {61, "Zqq trouble in home directory (#4.3.0)"},
  {62, "Zqq trouble creating files in queue (#4.3.0)"},
  {63, "Zqq trouble creating files in queue (#4.3.0)"},
  {64, "Zqq trouble creating files in queue (#4.3.0)"},
  {65, "Zqq trouble creating files in queue (#4.3.0)"},
  {66, "Zqq trouble creating files in queue (#4.3.0)"},
  {71, "Zmail server temporarily rejected message (#4.3.0)"},
  {72, "Zconnection to mail server timed out (#4.4.1)"},
  {73, "Zconnection to mail server rejected (#4.4.1)"},
  {74, "Zcommunication with mail server failed (#4.4.2)"},
  {81, "Zqq internal bug (#4.3.0)"},
  {91, "Zqq internal bug (#4.3.0)"},
  {120, "Zunable to exec qq (#4.3.0)"},
  {1, "Zqq temporary problem (#4.3.0)"},
  {10, "Zqq temporary problem (#4.3.0)"},
  {41, "Zqq temporary problem (#4.3.0)"},
  {50, "Zqq temporary problem (#4.3.0)"},
  {57, "Zqq temporary problem (#4.3.0)"},
  {60, "Zqq temporary problem (#4.3.0)"},
  {67, "Zqq temporary problem (#4.3.0)"},
  {70, "Zqq temporary problem (#4.3.0)"},
  {75, "Zqq temporary problem (#4.3.0)"},
  {82, "Zqq temporary problem (#4.3.0)"},
  {99, "Zqq temporary problem (#4.3.0)"},
  {100, "Zqq temporary problem (#4.3.0)"},
  {111, "Zqq temporary problem (#4.3.0)"},
  {114, "Zqq temporary problem (#4.3.0)"},
  {116, "Zqq temporary problem (#4.3.0)"},
  {255, "Zqq temporary problem (#4.3.0)"},
  {0, 0}
};

static void exitmsg_cases(void)
{
  const struct ecase *c;
  for (c = ecases; c->want; ++c) {
    char n[64];
    snprintf(n, sizeof n, "qq_exitmsg %d", c->code);
    check_str(n, qq_exitmsg(c->code), c->want);
  }
}

/* ---- the date ---- */

struct tcase {
  long t;
  const char *want;
};

static const struct tcase tcases[] = {
  {1795317597L, "22 Nov 2026 03:19:57 -0000"},
  {0L, "1 Jan 1970 00:00:00 -0000"},
  {951782400L, "29 Feb 2000 00:00:00 -0000"},
  {1709168461L, "29 Feb 2024 01:01:01 -0000"},
  {1740827201L, "1 Mar 2025 11:06:41 -0000"},
  {4102444799L, "31 Dec 2099 23:59:59 -0000"},
  {1000000000L, "9 Sep 2001 01:46:40 -0000"},
  {-1L, "31 Dec 1969 23:59:59 -0000"},
  {0, 0}
};

/* date_random - qq_fmtdate against gmtime_r + strftime for 200 000 times, 1901 to 2105 */
static void date_random(void)
{
  unsigned long x = 88172645463325252UL;
  int i, bad = 0;
  char out[64], want[64], why[160];
  for (i = 0; i < 200000 && !bad; ++i) {
    long t;
    time_t tt;
    struct tm tm;
    size_t len;
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    t = (long)(x % 6500000000UL) - 2200000000L;
    tt = (time_t)t;
    gmtime_r(&tt, &tm);
    snprintf(want, sizeof want, "%d ", tm.tm_mday);
    strftime(want + strlen(want), sizeof want - strlen(want), "%b %Y %H:%M:%S -0000", &tm);
    len = qq_fmtdate(out, t);
    out[len] = 0;
    if (strcmp(out, want)) {
      snprintf(why, sizeof why, "t=%ld: got \"%s\", want \"%s\"", t, out, want);
      bad = 1;
    }
  }
  check(!bad, "qq_fmtdate agrees with gmtime_r on 200000 random times", "%s", bad ? why : "");
}

static void date_cases(void)
{
  const struct tcase *c;
  for (c = tcases; c->want; ++c) {
    char out[64], n[64];
    size_t len;
    memset(out, 'Z', sizeof out);
    len = qq_fmtdate(out, c->t);
    snprintf(n, sizeof n, "qq_fmtdate %ld", c->t);
    if (len < sizeof out && out[len] != 'Z') check(0, n, "wrote past the returned length");
    else check_bytes(n, out, len < sizeof out ? len : 0, c->want, strlen(c->want));
  }
  date_random();
}

/* ---- end to end ---- */

static char dir[300];
static int nscript;

/* script - write a qmail-queue stand-in; read: 1 save fd 0 and fd 1 to msg.N / env.N first;
 * err: text for fd 6 (errlen bytes) or 0; tail: shell text run last (e.g. "exit 31") */
static const char *script(int read, const char *err, size_t errlen, const char *tail, int *id)
{
  static char path[400];
  char text[2000], f[400];
  int n = ++nscript;
  size_t len = 0;
  len += (size_t)snprintf(text + len, sizeof text - len, "#!/bin/sh\n");
  if (read)
    len += (size_t)snprintf(text + len, sizeof text - len,
                            "cat > '%s/msg.%d' || exit 97\ncat <&1 > '%s/env.%d' || exit 98\n", dir,
                            n, dir, n);
  if (err) {
    snprintf(f, sizeof f, "%s/err.%d", dir, n);
    check_write(f, err, errlen, 0644);
    len += (size_t)snprintf(text + len, sizeof text - len, "cat '%s' >&6\n", f);
  }
  len += (size_t)snprintf(text + len, sizeof text - len, "%s\n", tail);
  snprintf(path, sizeof path, "%s/qq.%d", dir, n);
  check_write(path, text, len, 0755);
  *id = n;
  return path;
}

static char *slurp(const char *what, int id, size_t *len)
{
  char f[400];
  snprintf(f, sizeof f, "%s/%s.%d", dir, what, id);
  return check_readfile(f, len);
}

struct qcase {
  const char *name;
  int read;
  const char *err;
  size_t errlen;
  const char *tail;
  int fail;             /* call qq_fail before qq_close */
  const char *want;     /* qq_close's answer */
  int checkfiles;       /* message and envelope were read and must be exact */
};

#define S(x) x, sizeof x - 1
static const char msg[] = "Subject: t\n\nline one\n.line two\n\0nul\n";
static const char from[] = "a@x.test";
static const char rcpts[] = "Tb@y.test\0Tc@z.test\0";

static const struct qcase qcases[] = {
  {"exit0", 1, 0, 0, "exit 0", 0, "", 1},
  {"exit31", 1, 0, 0, "exit 31", 0, "Dmail server permanently rejected message (#5.3.0)", 1},
  {"exit11", 1, 0, 0, "exit 11", 0, "Denvelope address too long for qq (#5.1.3)", 1},
  {"exit25", 1, 0, 0, "exit 25", 0, "Dqq permanent problem (#5.3.0)", 1},
  {"exit71", 1, 0, 0, "exit 71", 0, "Zmail server temporarily rejected message (#4.3.0)", 1},
  {"exit100", 1, 0, 0, "exit 100", 0, "Zqq temporary problem (#4.3.0)", 1},
  {"exit111", 1, 0, 0, "exit 111", 0, "Zqq temporary problem (#4.3.0)", 1},
  {"exit120", 1, 0, 0, "exit 120", 0, "Zunable to exec qq (#4.3.0)", 1},
  {"exit82_custom_permanent", 1, S("Dsome text"), "exit 82", 0, "Dsome text", 1},
  {"exit82_custom_temporary", 1, S("Ztry later, please"), "exit 82", 0, "Ztry later, please", 1},
  {"exit82_three_bytes", 1, S("Dab"), "exit 82", 0, "Dab", 1},
  {"exit82_two_bytes", 1, S("Da"), "exit 82", 0, "Zqq temporary problem (#4.3.0)", 1},
  {"exit82_no_text", 1, 0, 0, "exit 82", 0, "Zqq temporary problem (#4.3.0)", 1},
  {"exit82_text_cut_at_lf", 1, S("Dline one\nline two\n"), "exit 82", 0, "Dline one", 1},
  {"exit82_text_cut_at_cr", 1, S("Dline one\r\n"), "exit 82", 0, "Dline one", 1},
  {"exit82_text_cut_at_nul", 1, S("Dab\0cd"), "exit 82", 0, "Dab", 1},
  {"exit82_lf_first_is_short", 1, S("D\nxyz"), "exit 82", 0, "Zqq temporary problem (#4.3.0)", 1},
  {"exit0_text_ignored", 1, S("Dno"), "exit 0", 0, "", 1},
  {"exit31_text_ignored", 1, S("Dno"), "exit 31", 0,
   "Dmail server permanently rejected message (#5.3.0)", 1},
  {"killed", 1, 0, 0, "kill -9 $$", 0, "Zqq crashed (#4.3.0)", 1},
  {"segv", 1, 0, 0, "kill -SEGV $$", 0, "Zqq crashed (#4.3.0)", 1},
  {"fail_exit0", 1, 0, 0, "exit 0", 1, "Zqq read error (#4.3.0)", 0},
  {"fail_exit31", 1, 0, 0, "exit 31", 1, "Dmail server permanently rejected message (#5.3.0)", 0},
  {0, 0, 0, 0, 0, 0, 0, 0}
};

static void expect_envelope(const char *name, int id, const char *f, size_t flen, const char *r,
                            size_t rlen)
{
  char *want = malloc(flen + rlen + 3);
  size_t n = 0, len;
  char *got = slurp("env", id, &len);
  want[n++] = 'F';
  memcpy(want + n, f, flen); n += flen;
  want[n++] = 0;
  memcpy(want + n, r, rlen); n += rlen;
  want[n++] = 0;
  if (!got) check(0, name, "no envelope file");
  else check_bytes(name, got, len, want, n);
  free(got);
  free(want);
}

static void qq_cases(void)
{
  const struct qcase *c;
  for (c = qcases; c->name; ++c) {
    struct qq q;
    char n[100];
    int id;
    const char *r;
    setenv("QMAILQUEUE", script(c->read, c->err, c->errlen, c->tail, &id), 1);
    snprintf(n, sizeof n, "qq_open %s", c->name);
    if (!check(qq_open(&q) == 0 && q.pid > 0, n, "qq_open failed")) continue;
    qq_put(&q, msg, sizeof msg - 1);
    if (c->fail) qq_fail(&q);
    r = qq_close(&q, from, sizeof from - 1, rcpts, sizeof rcpts - 1);
    snprintf(n, sizeof n, "qq_close %s", c->name);
    check_str(n, r, c->want);
    if (c->checkfiles) {
      size_t len;
      char *got = slurp("msg", id, &len);
      snprintf(n, sizeof n, "qq_close %s message", c->name);
      if (!got) check(0, n, "no message file");
      else check_bytes(n, got, len, msg, sizeof msg - 1);
      free(got);
      snprintf(n, sizeof n, "qq_close %s envelope", c->name);
      expect_envelope(n, id, from, sizeof from - 1, rcpts, sizeof rcpts - 1);
    }
    if (c->fail && c->read) {
      size_t len;
      char *got = slurp("env", id, &len);
      snprintf(n, sizeof n, "qq_close %s no_envelope", c->name);
      check(got && len == 0, n, "envelope sent after qq_fail: %s", got ? check_esc(got, len) : "none");
      free(got);
    }
  }
}

/* the custom error text is cut at QQ_ERRTEXT_MAX bytes */
static void long_errtext(void)
{
  static char err[1000];
  struct qq q;
  int id;
  const char *r;
  memset(err, 'x', sizeof err);
  err[0] = 'D';
  setenv("QMAILQUEUE", script(1, err, sizeof err, "exit 82", &id), 1);
  if (qq_open(&q) == -1) { check(0, "qq_close exit82_long_text", "qq_open failed"); return; }
  r = qq_close(&q, "", 0, "Tx\0", 3);
  check(strlen(r) == QQ_ERRTEXT_MAX && !memcmp(r, err, QQ_ERRTEXT_MAX), "qq_close exit82_long_text",
        "got %zu bytes: %s", strlen(r), check_esc(r, strlen(r)));
}

/* null sender, no recipients, many recipients, a big message */
static void envelope_cases(void)
{
  static char big[3 << 20], rl[200000];
  struct qq q;
  int id, i;
  size_t n = 0, len;
  const char *r;
  char *got;

  setenv("QMAILQUEUE", script(1, 0, 0, "exit 0", &id), 1);
  if (qq_open(&q) == 0) {
    r = qq_close(&q, "", 0, "Tpostmaster\0", 12);
    check_str("qq_close null_sender", r, "");
    expect_envelope("qq_close null_sender envelope", id, "", 0, "Tpostmaster\0", 12);
    got = slurp("msg", id, &len);
    check(got && len == 0, "qq_close empty_message", "message %s", got ? check_esc(got, len) : "none");
    free(got);
  } else check(0, "qq_close null_sender", "qq_open failed");

  for (i = 0; i < 5000; ++i) n += (size_t)sprintf(rl + n, "Tuser%d@example.test", i) + 1;
  for (i = 0; i < (int)sizeof big; ++i) big[i] = (char)(i % 251);
  setenv("QMAILQUEUE", script(1, 0, 0, "exit 0", &id), 1);
  if (qq_open(&q) == 0) {
    for (i = 0; i < (int)sizeof big; i += 1000)
      qq_put(&q, big + i, 1000 < sizeof big - i ? 1000 : sizeof big - i);
    r = qq_close(&q, from, sizeof from - 1, rl, n);
    check_str("qq_close big", r, "");
    got = slurp("msg", id, &len);
    if (!got) check(0, "qq_close big message", "no file");
    else check(len == sizeof big && !memcmp(got, big, len), "qq_close big message", "%zu bytes", len);
    free(got);
    expect_envelope("qq_close big envelope", id, from, sizeof from - 1, rl, n);
  } else check(0, "qq_close big", "qq_open failed");
}

static void exec_cases(void)
{
  struct qq q;
  char p[400];
  const char *r;
  setenv("QMAILQUEUE", "/nonexistent/qmail-queue", 1);
  if (check(qq_open(&q) == 0, "qq_open missing_program", "qq_open failed, want the failure at close")) {
    qq_put(&q, "x\n", 2);
    r = qq_close(&q, from, sizeof from - 1, rcpts, sizeof rcpts - 1);
    check_str("qq_close missing_program", r, "Zunable to exec qq (#4.3.0)");
  }
  snprintf(p, sizeof p, "%s/notexec", dir);
  check_write(p, S("#!/bin/sh\nexit 0\n"), 0644);
  setenv("QMAILQUEUE", p, 1);
  if (qq_open(&q) == 0) {
    r = qq_close(&q, from, sizeof from - 1, rcpts, sizeof rcpts - 1);
    check_str("qq_close not_executable", r, "Zunable to exec qq (#4.3.0)");
  } else check(0, "qq_close not_executable", "qq_open failed");
  /* a relative QMAILQUEUE is relative to the working directory (the qmail home) */
  mkdir("bin", 0755);
  check_write("bin/myqq", S("#!/bin/sh\ncat >/dev/null\nexit 31\n"), 0755);
  setenv("QMAILQUEUE", "bin/myqq", 1);
  if (qq_open(&q) == 0) {
    r = qq_close(&q, from, sizeof from - 1, rcpts, sizeof rcpts - 1);
    check_str("qq_close relative_path", r, "Dmail server permanently rejected message (#5.3.0)");
  } else check(0, "qq_close relative_path", "qq_open failed");
  /* no QMAILQUEUE: bin/qmail-queue in the working directory */
  unsetenv("QMAILQUEUE");
  check_write("bin/qmail-queue", S("#!/bin/sh\ncat >/dev/null\nexit 73\n"), 0755);
  if (qq_open(&q) == 0) {
    r = qq_close(&q, from, sizeof from - 1, rcpts, sizeof rcpts - 1);
    check_str("qq_close default_program", r, "Zconnection to mail server rejected (#4.4.1)");
  } else check(0, "qq_close default_program", "qq_open failed");
  /* QMAILQUEUE set but empty: qmail execs "" and fails, it does not fall back */
  setenv("QMAILQUEUE", "", 1);
  if (qq_open(&q) == 0) {
    r = qq_close(&q, from, sizeof from - 1, rcpts, sizeof rcpts - 1);
    check_str("qq_close empty_env_fails_as_qmail", r, "Zunable to exec qq (#4.3.0)");
  } else check(0, "qq_close empty_env_fails_as_qmail", "qq_open failed");
}

/* put_lines - s in 80-byte pieces, as smtpd.c writes a message line by line */
static void put_lines(struct qq *q, const char *s, size_t len)
{
  size_t i;
  for (i = 0; i < len; i += 80) qq_put(q, s + i, len - i < 80 ? len - i : 80);
}

/* a qmail-queue that does not read, does not exit: the deadline kills it */
static void stuck_cases(void)
{
  static char big[1 << 20];
  struct qq q;
  int id;
  const char *r;
  time_t t0;
  memset(big, 'm', sizeof big);
  qq_settimeout(1);
  /* (the stand-in sleeps only 6 s, so a missing deadline costs 6 s, not a hang) */
  setenv("QMAILQUEUE", script(0, 0, 0, "exec sleep 6", &id), 1);
  t0 = time(0);
  if (qq_open(&q) == 0) {
    qq_put(&q, big, sizeof big);  /* more than a pipe holds */
    r = qq_close(&q, from, sizeof from - 1, rcpts, sizeof rcpts - 1);
    check_str("qq_close stuck_not_reading", r, "Zqq timeout (#4.3.0)");
    check(time(0) - t0 < 5, "qq_close stuck_not_reading deadline", "took %ld s", (long)(time(0) - t0));
  } else check(0, "qq_close stuck_not_reading", "qq_open failed");
  /* the same with the message written the way smtpd.c writes it: many small puts */
  setenv("QMAILQUEUE", script(0, 0, 0, "exec sleep 6", &id), 1);
  t0 = time(0);
  if (qq_open(&q) == 0) {
    put_lines(&q, big, sizeof big);
    r = qq_close(&q, from, sizeof from - 1, rcpts, sizeof rcpts - 1);
    check_str("qq_close stuck_not_reading_lines", r, "Zqq timeout (#4.3.0)");
    check(time(0) - t0 < 5, "qq_close stuck_not_reading_lines deadline", "took %ld s",
          (long)(time(0) - t0));
  } else check(0, "qq_close stuck_not_reading", "qq_open failed");
  setenv("QMAILQUEUE", script(1, 0, 0, "exec sleep 6", &id), 1);
  t0 = time(0);
  if (qq_open(&q) == 0) {
    qq_put(&q, "small\n", 6);
    r = qq_close(&q, from, sizeof from - 1, rcpts, sizeof rcpts - 1);
    check_str("qq_close stuck_not_exiting", r, "Zqq timeout (#4.3.0)");
    check(time(0) - t0 < 5, "qq_close stuck_not_exiting deadline", "took %ld s", (long)(time(0) - t0));
  } else check(0, "qq_close stuck_not_exiting", "qq_open failed");
  qq_settimeout(30);
  /* exits at once without reading a big message: the writes fail, exit 0 is not trusted */
  setenv("QMAILQUEUE", script(0, 0, 0, "exit 0", &id), 1);
  if (qq_open(&q) == 0) {
    qq_put(&q, big, sizeof big);
    r = qq_close(&q, from, sizeof from - 1, rcpts, sizeof rcpts - 1);
    check_str("qq_close exit0_write_failed", r, "Zqq read error (#4.3.0)");
  } else check(0, "qq_close exit0_write_failed", "qq_open failed");
  /* the same with small puts, as smtpd.c writes: every failed flush must be noticed */
  setenv("QMAILQUEUE", script(0, 0, 0, "exit 0", &id), 1);
  if (qq_open(&q) == 0) {
    put_lines(&q, big, sizeof big);
    r = qq_close(&q, from, sizeof from - 1, rcpts, sizeof rcpts - 1);
    check_str("qq_close exit0_write_failed_lines", r, "Zqq read error (#4.3.0)");
  } else check(0, "qq_close exit0_write_failed_lines", "qq_open failed");
}

/* ---- the Received line ---- */

struct rcase {
  const char *name;
  const char *protocol, *local, *remoteip, *remotehost, *remoteinfo, *helo;
  const char *want;  /* up to "; " - the date and "\n" follow */
};

static const struct rcase rcases[] = {
  {"helo", "SMTP", "127.0.0.1", "127.0.0.1", "unknown", 0, "client.test",
   "Received: from unknown (HELO client.test) (127.0.0.1)\n  by 127.0.0.1 with SMTP; "},
  {"info", "SMTP", "mx.example.test", "127.0.0.1", "client.example.net", "identuser", 0,
   "Received: from client.example.net (identuser@127.0.0.1)\n  by mx.example.test with SMTP; "},
  {"helo_and_info", "SMTP", "mx.example.test", "127.0.0.1", "client.example.net", "identuser",
   "other.test",
   "Received: from client.example.net (HELO other.test) (identuser@127.0.0.1)\n"
   "  by mx.example.test with SMTP; "},
  {"plain", "SMTP", "unknown", "unknown", "unknown", 0, 0,
   "Received: from unknown (unknown)\n  by unknown with SMTP; "},
  {"empty_helo", "SMTP", "l", "192.0.2.7", "h", 0, "",
   "Received: from h (HELO ) (192.0.2.7)\n  by l with SMTP; "},
  {"helo_spaces", "SMTP", "l", "192.0.2.7", "h", 0, "a b  c",
   "Received: from h (HELO a?b??c) (192.0.2.7)\n  by l with SMTP; "},
  {"helo_brackets_kept", "SMTP", "l", "192.0.2.7", "h", 0, "[192.0.2.1]",
   "Received: from h (HELO [192.0.2.1]) (192.0.2.7)\n  by l with SMTP; "},
  {"helo_safe_chars", "SMTP", "l", "192.0.2.7", "h", 0, "a.b@c%d+e/f=g:h-i_j",
   "Received: from h (HELO a.b@c%d+e/f=g:h-i?j) (192.0.2.7)\n  by l with SMTP; "},
  {"helo_crlf_injection", "SMTP", "l", "192.0.2.7", "h", 0, "x\r\nReceived: forged",
   "Received: from h (HELO x??Received:?forged) (192.0.2.7)\n  by l with SMTP; "},
  {"helo_8bit_and_parens", "SMTP", "l", "192.0.2.7", "h", 0, "\xe9(x);\"'<>\\`\t",
   "Received: from h (HELO ??x?????????" ") (192.0.2.7)\n  by l with SMTP; "},
  {"all_fields_sanitised", "SMTP", "l o(c)", "1.2.3.4;x", "h h", "u s\xe9r", "z",
   "Received: from h?h (HELO z) (u?s?r@1.2.3.4?x)\n  by l?o?c? with SMTP; "},
  {"protocol_raw", "ESMTPS (TLS_AES_256_GCM_SHA384 encrypted)", "l", "i", "h", 0, 0,
   "Received: from h (i)\n  by l with ESMTPS (TLS_AES_256_GCM_SHA384 encrypted); "},
  {0, 0, 0, 0, 0, 0, 0, 0}
};

static void received_one(const char *name, const struct rcase *c, const char *want, size_t wantlen)
{
  static char w0[70000], w1[70000];
  struct qq q;
  int id;
  time_t t0, t1;
  size_t len, n0, n1;
  char *got, nm[100];
  snprintf(nm, sizeof nm, "qq_received %s", name);
  setenv("QMAILQUEUE", script(1, 0, 0, "exit 0", &id), 1);
  if (qq_open(&q) == -1) { check(0, nm, "qq_open failed"); return; }
  t0 = time(0);
  qq_received(&q, c->protocol, c->local, c->remoteip, c->remotehost, c->remoteinfo, c->helo);
  t1 = time(0);
  qq_put(&q, "body\n", 5);
  if (*qq_close(&q, "", 0, "Tx\0", 3)) { check(0, nm, "qq_close failed"); return; }
  memcpy(w0, want, wantlen);
  n0 = wantlen + qq_fmtdate(w0 + wantlen, (long)t0);
  memcpy(w0 + n0, "\nbody\n", 6); n0 += 6;
  memcpy(w1, want, wantlen);
  n1 = wantlen + qq_fmtdate(w1 + wantlen, (long)t1);
  memcpy(w1 + n1, "\nbody\n", 6); n1 += 6;
  got = slurp("msg", id, &len);
  if (!got) check(0, nm, "no message file");
  else if (len == n1 && !memcmp(got, w1, n1)) check(1, nm, "%s", "");
  else check_bytes(nm, got, len, w0, n0);
  free(got);
}

static void received_cases(void)
{
  static char longhelo[3000], want[4000];
  const struct rcase *c;
  struct rcase lc;
  size_t n, i;
  for (c = rcases; c->name; ++c) received_one(c->name, c, c->want, strlen(c->want));
  /* longer than safeput's 256-byte chunk */
  for (i = 0; i < sizeof longhelo - 1; ++i) longhelo[i] = i % 7 == 6 ? ' ' : 'a';
  longhelo[sizeof longhelo - 1] = 0;
  lc = rcases[0];
  lc.helo = longhelo;
  n = (size_t)sprintf(want, "Received: from unknown (HELO ");
  for (i = 0; i < sizeof longhelo - 1; ++i) want[n++] = longhelo[i] == ' ' ? '?' : 'a';
  n += (size_t)sprintf(want + n, ") (127.0.0.1)\n  by 127.0.0.1 with SMTP; ");
  received_one("long_helo", &lc, want, n);
}

int main(void)
{
  signal(SIGPIPE, SIG_IGN);
  snprintf(dir, sizeof dir, "%s", check_tmpdir("queue"));
  qq_settimeout(30);
  exitmsg_cases();
  date_cases();
  qq_cases();
  long_errtext();
  envelope_cases();
  exec_cases();
  received_cases();
  stuck_cases();
  return check_done();
}
