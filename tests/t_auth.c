/* t_auth - auth.c: strict base64 both ways, the PLAIN and CRAM-MD5 splitters (empty fields,
 * CR/LF, NUL), the SMTPAUTH modes and EHLO lines, whole AUTH exchanges against a scripted
 * client and tests/checkpw (good, bad, "*", malformed, hanging child killed at AUTHTIMEOUT).
 * Runs in $MXG_SRC/tests, where checkpw lives. */
#include <time.h>
#include "auth.h"
#include <signal.h>
#include "check.h"

static int b64(const char *name, const char *in, const char *want, size_t wantlen)
{
  char out[256];
  size_t n = 0;
  int r = auth_b64decode(in, strlen(in), out, &n);
  if (!want) return check(r == -1, name, "accepted %s", in);
  if (r) return check(0, name, "refused %s", in);
  return check_bytes(name, out, n, want, wantlen);
}

static void test_b64(void)
{
  char out[64];
  b64("b64 plain", "AGFsaWNlAHNlY3JldA==", "\0alice\0secret", 13);
  b64("b64 one pad", "YWI=", "ab", 2);
  b64("b64 no pad", "YWJj", "abc", 3);
  b64("b64 empty", "", "", 0);
  b64("b64 bad char", "YW*j", 0, 0);
  b64("b64 bad length", "YWJ", 0, 0);
  b64("b64 pad inside", "YW==YWJj", 0, 0);
  b64("b64 pad first", "Y===", 0, 0);
  b64("b64 pad then char", "YW=j", 0, 0);
  b64("b64 space", "YW Jj", 0, 0);
  auth_b64encode("<1.2@x>", 7, out);
  check_str("b64 encode", out, "PDEuMkB4Pg==");
  auth_b64encode("Username:", 9, out);
  check_str("b64 encode prompt", out, "VXNlcm5hbWU6");
}

static void plain(const char *name, const char *in, size_t len, const char *user, const char *pass)
{
  const char *u = 0, *p = 0;
  int r = auth_plain(in, len, &u, &p);
  if (!user) { check(r == -1, name, "accepted"); return; }
  if (check(r == 0, name, "refused")) {
    check_str(name, u, user);
    check_str(name, p, pass);
  }
}

static void test_split(void)
{
  char buf[64];
  const char *u, *d;
  plain("plain ok", "\0alice\0secret", sizeof "\0alice\0secret" - 1, "alice", "secret");
  plain("plain authzid ignored", "bob\0alice\0secret", sizeof "bob\0alice\0secret" - 1, "alice", "secret");
  plain("plain empty user", "\0\0secret", sizeof "\0\0secret" - 1, 0, 0);
  plain("plain empty pass", "\0alice\0", sizeof "\0alice\0" - 1, 0, 0);
  plain("plain one NUL", "alice\0secret", sizeof "alice\0secret" - 1, 0, 0);
  plain("plain three NULs", "\0alice\0sec\0ret", sizeof "\0alice\0sec\0ret" - 1, 0, 0);
  plain("plain LF in pass", "\0alice\0sec\nret", sizeof "\0alice\0sec\nret" - 1, 0, 0);
  plain("plain CR in user", "\0al\rice\0secret", sizeof "\0al\rice\0secret" - 1, 0, 0);
  strcpy(buf, "alice 0123abcd");
  if (check(!auth_cram_split(buf, 14, &u, &d), "cram ok", "refused")) {
    check_str("cram user", u, "alice");
    check_str("cram digest", d, "0123abcd");
  }
  strcpy(buf, "a b 0123");
  if (check(!auth_cram_split(buf, 8, &u, &d), "cram last space", "refused"))
    check_str("cram user with space", u, "a b");
  strcpy(buf, "alice");
  check(auth_cram_split(buf, 5, &u, &d) == -1, "cram no space", "accepted");
  strcpy(buf, " 0123");
  check(auth_cram_split(buf, 5, &u, &d) == -1, "cram empty user", "accepted");
  strcpy(buf, "alice ");
  check(auth_cram_split(buf, 6, &u, &d) == -1, "cram empty digest", "accepted");
  strcpy(buf, "al\nice 0123");
  check(auth_cram_split(buf, 11, &u, &d) == -1, "cram LF", "accepted");
}

static char *prog[] = {"./checkpw", "/bin/true", 0};

static void test_init(void)
{
  unsetenv("SMTPAUTH");
  unsetenv("AUTHREQUIRED");
  check(auth_init("mx.test", prog, "127.0.0.1") == 1, "hostname form enabled", "off");
  check_str("ehlo hostname form", auth_ehlo(0), "AUTH LOGIN PLAIN CRAM-MD5");
  check_str("ehlo = form", auth_ehlo(1), "AUTH=LOGIN PLAIN CRAM-MD5");
  check(auth_init(0, prog, "127.0.0.1") == 0, "hoffmann without SMTPAUTH off", "on");
  check(auth_init(0, 0, "127.0.0.1") == 0, "no argv off", "on");
  setenv("SMTPAUTH", "0", 1);
  check(auth_init(0, prog, "x") == 0, "SMTPAUTH=0 off", "on");
  setenv("SMTPAUTH", "", 1);
  check(auth_init(0, prog, "x") == 1 && !auth_required(), "SMTPAUTH empty", "off");
  check_str("ehlo SMTPAUTH empty", auth_ehlo(0), "AUTH LOGIN PLAIN");
  setenv("SMTPAUTH", "+cram", 1);
  auth_init(0, prog, "x");
  check_str("ehlo +cram", auth_ehlo(0), "AUTH LOGIN PLAIN CRAM-MD5");
  setenv("SMTPAUTH", "!cram", 1);
  auth_init(0, prog, "x");
  check_str("ehlo !cram", auth_ehlo(0), "AUTH CRAM-MD5");
  check(auth_required(), "! requires auth", "not required");
  setenv("SMTPAUTH", "-cram", 1);
  auth_init(0, prog, "x");
  check_str("ehlo -cram", auth_ehlo(0), "AUTH LOGIN PLAIN");
  setenv("SMTPAUTH", "TLSREQUIRED", 1);
  check(auth_init(0, prog, "x") == 1 && auth_tls_required(), "TLSREQUIRED", "not required");
  check_str("ehlo TLSREQUIRED", auth_ehlo(0), "AUTH LOGIN PLAIN");
  setenv("SMTPAUTH", "", 1);
  check(auth_init(0, 0, "x") == 0 && !auth_configured(), "no argv, no bin/auth_smtp: off", "on");
  check(auth_note() && strstr(auth_note(), "bin/auth_smtp"), "no helper: a note says why", "%s",
        auth_note() ? auth_note() : "none");
  {
    int here = open(".", O_RDONLY);
    const char *d = check_tmpdir("auth");
    char path[512];
    snprintf(path, sizeof path, "%s/bin", d);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/bin/auth_smtp", d);
    check_write(path, "#!/bin/sh\nexit 1\n", 17, 0755);
    if (chdir(d) == 0) {
      check(auth_init(0, 0, "x") == 1 && auth_configured() && !auth_note(), "bin/auth_smtp", "off");
      check_str("ehlo bin/auth_smtp", auth_ehlo(0), "AUTH LOGIN PLAIN");
      setenv("SMTPAUTH", "+cram", 1);
      auth_init(0, 0, "x");
      check_str("ehlo +cram with bin/auth_smtp", auth_ehlo(0), "AUTH LOGIN PLAIN");
      check(auth_note() != 0, "+cram with bin/auth_smtp: a note", "none");
      setenv("SMTPAUTH", "cram", 1);
      check(auth_init(0, 0, "x") == 0, "cram alone with bin/auth_smtp: off", "on");
    }
    if (fchdir(here) == -1) check(0, "fchdir", "%s", strerror(errno));
    close(here);
  }
  unsetenv("SMTPAUTH");
  setenv("AUTHREQUIRED", "", 1);
  auth_init("mx.test", prog, "x");
  check(auth_required(), "AUTHREQUIRED", "not required");
  unsetenv("AUTHREQUIRED");
}

/* the scripted client */
static const char *const *script;
static char prompts[1024];

static void prompt(const char *t) { strcat(prompts, "["); strcat(prompts, t); strcat(prompts, "]"); }
static int getline_(char *buf, size_t size)
{
  if (!*script) return -1;
  if (strlen(*script) >= size) { ++script; return 0; }
  strcpy(buf, *script++);
  return 1;
}
static const struct auth_io io = {prompt, getline_};

static void exchange(const char *name, const char *arg, const char *const *lines, int code,
                     const char *wantprompts)
{
  const char *user = 0, *method = 0;
  struct decision d;
  script = lines;
  prompts[0] = 0;
  d = auth_command(arg, &io, &user, &method);
  check_long(name, d.code, code);
  if (wantprompts) check_str(name, prompts, wantprompts);
  if (code == 235) check_str(name, user ? user : "(null)", "alice");
}

static void test_exchange(void)
{
  static const char *const none[] = {0};
  static const char *const plain_ok[] = {"AGFsaWNlAHNlY3JldA==", 0};
  static const char *const login_ok[] = {"YWxpY2U=", "c2VjcmV0", 0};
  static const char *const pass_ok[] = {"c2VjcmV0", 0};
  static const char *const login_bad[] = {"YWxpY2U=", "d3Jvbmc=", 0};
  static const char *const star[] = {"*", 0};
  static const char *const empty[] = {"", 0};
  static const char *const junk[] = {"!!!!", 0};
  static const char *const hang[] = {"aGFuZw==", "eA==", 0};
  char dir[512];
  long long t0;
  struct timespec ts;
  static char cpw[512];
  if (!getcwd(cpw, sizeof cpw - 16)) return;
  strcat(cpw, "/checkpw");
  prog[0] = cpw;  /* absolute: check_tmpdir changes directory */
  strcpy(dir, check_tmpdir("auth"));
  strcat(dir, "/authdb");
  check_write(dir, "alice:secret\n", 13, 0644);
  setenv("CHECKPW_DB", dir, 1);
  setenv("AUTHDELAY", "2", 1);
  setenv("AUTHTIMEOUT", "1", 1);
  auth_init("mx.test", prog, "x");
  exchange("plain initial", "PLAIN AGFsaWNlAHNlY3JldA==", none, 235, "");
  exchange("plain prompt", "plain", plain_ok, 235, "[]");
  exchange("login", "LOGIN", login_ok, 235, "[VXNlcm5hbWU6][UGFzc3dvcmQ6]");
  exchange("login initial user", "LOGIN YWxpY2U=", pass_ok, 235, "[UGFzc3dvcmQ6]");
  exchange("login wrong password", "LOGIN", login_bad, 535, 0);
  exchange("star aborts", "LOGIN", star, 501, 0);
  exchange("empty line", "PLAIN", empty, 501, 0);
  exchange("bad base64", "PLAIN", junk, 501, 0);
  exchange("bad initial", "PLAIN A", none, 501, 0);
  exchange("plain equals", "PLAIN =", none, 501, 0);
  exchange("unknown mech", "GSSAPI", none, 504, 0);
  exchange("no mech", "", none, 501, 0);
  exchange("eof", "LOGIN", none, 421, 0);
  clock_gettime(CLOCK_MONOTONIC, &ts);
  t0 = ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
  exchange("hanging checkpassword", "LOGIN", hang, 454, 0);
  clock_gettime(CLOCK_MONOTONIC, &ts);
  check(ts.tv_sec * 1000LL + ts.tv_nsec / 1000000 - t0 < 3000, "hang killed at deadline",
        "took %lld ms", ts.tv_sec * 1000LL + ts.tv_nsec / 1000000 - t0);
  {
    struct decision d;
    const char *u, *m;
    script = login_bad;
    d = auth_command("LOGIN", &io, &u, &m);
    check_long("535 delay", d.delay_ms, 2000);
    check_str("method on failure", m, "login");
  }
  {
    char *bad[] = {"/nonexistent/checkpw", 0};
    check_long("exec failure is 454", auth_checkpw(bad, "a", "b", "", 1000), AUTH_ECHILD);
    bad[0] = "/bin/false";
    check_long("exit 1 refuses", auth_checkpw(bad, "a", "b", "", 1000), 1);
  }
  unlink(dir);
}

int main(void)
{
  signal(SIGPIPE, SIG_IGN);  /* as mxguard-smtpd: a checkpassword may exit before reading */
  test_b64();
  test_split();
  test_init();
  test_exchange();
  return check_done();
}
