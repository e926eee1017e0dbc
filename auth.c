/* auth.c - SMTP AUTH (RFC 4954) with the qmail AUTH patches' conventions: PLAIN, LOGIN and
 * CRAM-MD5, each checked by a checkpassword program (user NUL password NUL challenge NUL on its
 * fd 3, exit 0 = good). Enabled by argv: "hostname checkprog args" (Dabrowski/jms1 form: all
 * three methods), or "checkprog args" (argv[1] with a '/', Hoffmann form) together with
 * SMTPAUTH set and not "-" or "0" (value "": LOGIN PLAIN; "+cram": also CRAM-MD5; "cram":
 * CRAM-MD5 only; "-cram": LOGIN PLAIN, never CRAM-MD5; "TLSREQUIRED" (qmail-ldap): LOGIN PLAIN
 * offered and accepted only inside TLS; a leading '!' also makes AUTH required).
 * qmail-ldap: with SMTPAUTH set and no checkpassword in argv, the qmail home's bin/auth_smtp
 * checks LOGIN and PLAIN as qmail-ldap's qmail-smtpd calls it: "login" NUL b64user NUL
 * b64pass NUL, or "plain" NUL b64(NUL user NUL pass) NUL on its stdin; it answers on stdout
 * K user NUL (good), D (refused: 535), Z (malformed: 501), anything else or an exit status
 * other than 0 is 454; CRAM-MD5 is not offered (auth_smtp cannot check it). AUTHPREPEND
 * (qmail-ldap) is put before the authenticated name. Reads AUTHREQUIRED, AUTHTIMEOUT
 * (seconds the child may take, default 30), AUTHDELAY (seconds before a 535, default 5) and
 * AUTHFAILMAX (failures before the session is closed, default 5). A checkpassword that cannot
 * be started, crashes, exits 111 or outlives AUTHTIMEOUT (it is killed) gives 454, never a
 * permit; any other non-zero exit is a refusal (535). The child is started with vfork() and
 * awaited on its pidfd within AUTHTIMEOUT (proc.c), not by polling waitpid().
 * Secrets: decoded passwords are zeroed after use, never logged, never in argv or environment;
 * CR or LF inside decoded credentials is malformed (501). */
#define _GNU_SOURCE  /* close_range */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <linux/close_range.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
#include "auth.h"
#include "proc.h"

#define AUTH_SMTP "bin/auth_smtp"  /* qmail-ldap's helper, relative to the qmail home */
#define AUTH_PREPEND_MAX 64

static const char *cram_host;
static char **checkprog;
static unsigned methods;
static int enabled, required, failures, tlsreq, ldapmode;
static const char *note;  /* why AUTH is off or limited, for the log */
static char *smtp_argv[] = {AUTH_SMTP, 0};
static const char *curmech;  /* "plain", "login", "cram-md5": the exchange in progress */
static char user_out[AUTH_PREPEND_MAX + AUTH_USER_MAX + 1];
static char resp[AUTH_LINE_MAX + 1];    /* the client's line */
static char dec[AUTH_LINE_MAX + 1];     /* decoded */
static char dec2[AUTH_LINE_MAX + 1];

static unsigned long env_ulong(const char *name, unsigned long def)
{
  const char *x = getenv(name);
  char *end;
  unsigned long u;
  if (!x || !*x) return def;
  u = strtoul(x, &end, 10);
  return *end ? def : u;
}

int auth_init(const char *host, char **prog, const char *local)
{
  const char *sa = getenv("SMTPAUTH");
  checkprog = prog;
  required = getenv("AUTHREQUIRED") != 0;
  tlsreq = ldapmode = 0;
  note = 0;
  if ((!prog || !prog[0]) && (!sa || !strcmp(sa, "-") || !strcmp(sa, "0"))) return enabled = 0;
  if (host && prog && prog[0]) {
    cram_host = host;
    methods = AUTH_LOGIN | AUTH_PLAIN | AUTH_CRAM;
    return enabled = 1;
  }
  cram_host = local;
  if (!sa || !strcmp(sa, "-") || !strcmp(sa, "0")) return enabled = 0;
  if (*sa == '!') { required = 1; ++sa; }
  if (!strcmp(sa, "cram")) methods = AUTH_CRAM;
  else if (!strcmp(sa, "+cram")) methods = AUTH_LOGIN | AUTH_PLAIN | AUTH_CRAM;
  else methods = AUTH_LOGIN | AUTH_PLAIN;  /* "", "-cram", "TLSREQUIRED", anything else */
  tlsreq = !strcasecmp(sa, "TLSREQUIRED");
  if (!prog || !prog[0]) {  /* qmail-ldap: no checkpassword in argv */
    if (access(AUTH_SMTP, X_OK) == -1) {
      note = "SMTPAUTH is set but there is no checkpassword in argv and no executable "
             AUTH_SMTP " in the qmail home";
      return enabled = 0;
    }
    checkprog = smtp_argv;
    ldapmode = 1;
    if (methods & AUTH_CRAM) note = AUTH_SMTP " cannot check CRAM-MD5: not offered";
    methods &= (unsigned)~AUTH_CRAM;
    if (!methods) return enabled = 0;
  }
  return enabled = 1;
}

int auth_configured(void) { return checkprog && checkprog[0]; }
int auth_tls_required(void) { return tlsreq; }
const char *auth_note(void) { return note; }
int auth_enabled(void) { return enabled; }
int auth_required(void) { return required; }
unsigned auth_methods(void) { return methods; }

const char *auth_ehlo(int equal)
{
  static char buf[64];
  strcpy(buf, equal ? "AUTH=" : "AUTH ");
  if (methods & AUTH_LOGIN) strcat(buf, "LOGIN ");
  if (methods & AUTH_PLAIN) strcat(buf, "PLAIN ");
  if (methods & AUTH_CRAM) strcat(buf, "CRAM-MD5 ");
  buf[strlen(buf) - 1] = 0;
  return buf;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64val(char c)
{
  const char *p = c ? strchr(b64, c) : 0;
  return p ? (int)(p - b64) : -1;
}

/* auth_b64decode - strict RFC 4648: length a multiple of 4, '=' only as padding at the end */
int auth_b64decode(const char *in, size_t len, char *out, size_t *outlen)
{
  size_t i, n = 0;
  if (len % 4) return -1;
  for (i = 0; i < len; i += 4) {
    int v[4], k, pad = 0;
    for (k = 0; k < 4; ++k) {
      if (in[i + k] == '=' && i + 4 == len && k >= 2) { v[k] = 0; ++pad; continue; }
      if (pad || (v[k] = b64val(in[i + k])) < 0) return -1;
    }
    if (pad == 1 && in[i + 2] == '=') return -1;
    out[n++] = (char)(v[0] << 2 | v[1] >> 4);
    if (pad < 2) out[n++] = (char)((v[1] & 15) << 4 | v[2] >> 2);
    if (pad < 1) out[n++] = (char)((v[2] & 3) << 6 | v[3]);
  }
  *outlen = n;
  return 0;
}

size_t auth_b64encode(const char *in, size_t len, char *out)
{
  const unsigned char *u = (const unsigned char *)in;
  size_t i, n = 0;
  for (i = 0; i < len; i += 3) {
    unsigned v = (unsigned)u[i] << 16 | (i + 1 < len ? (unsigned)u[i + 1] << 8 : 0) |
                 (i + 2 < len ? u[i + 2] : 0);
    out[n++] = b64[v >> 18];
    out[n++] = b64[v >> 12 & 63];
    out[n++] = i + 1 < len ? b64[v >> 6 & 63] : '=';
    out[n++] = i + 2 < len ? b64[v & 63] : '=';
  }
  out[n] = 0;
  return n;
}

static int clean(const char *s, size_t len)
{
  return !memchr(s, '\r', len) && !memchr(s, '\n', len);
}

/* auth_plain - RFC 4616: authzid NUL authcid NUL passwd; authzid is ignored */
int auth_plain(const char *in, size_t len, const char **user, const char **pass)
{
  const char *a = memchr(in, 0, len), *b;
  if (!a || !clean(in, len)) return -1;
  b = memchr(a + 1, 0, len - (size_t)(a + 1 - in));
  if (!b || b == a + 1 || b + 1 == in + len || memchr(b + 1, 0, len - (size_t)(b + 1 - in)))
    return -1;
  *user = a + 1;
  *pass = b + 1;
  return 0;
}

int auth_cram_split(char *in, size_t len, const char **user, const char **digest)
{
  char *sp;
  if (memchr(in, 0, len) || !clean(in, len)) return -1;
  in[len] = 0;
  sp = strrchr(in, ' ');
  if (!sp || sp == in || !sp[1]) return -1;
  *sp = 0;
  *user = in;
  *digest = sp + 1;
  return 0;
}

static void zero(void)
{
  volatile char *p;
  size_t i;
  for (p = resp, i = 0; i < sizeof resp; ++i) p[i] = 0;
  for (p = dec, i = 0; i < sizeof dec; ++i) p[i] = 0;
  for (p = dec2, i = 0; i < sizeof dec2; ++i) p[i] = 0;
}

/* child - runs inside vfork(): fd 3 the pipe, fd 0 and 1 null (opened by the parent): the
 * checkpassword program must never talk to the client (under TLS it would corrupt the
 * stream); fd 2 stays the log. Only system calls on its own arguments, then exec or _exit. */
static void child(char **argv, int fd, int null)
{
  if (fd != 3) { if (dup2(fd, 3) == -1) _exit(111); close(fd); }
  if (close_range(4, ~0U, CLOSE_RANGE_CLOEXEC) == -1) {  /* only what the protocol gives */
    int i;
    for (i = 4; i < 1024; ++i) fcntl(i, F_SETFD, FD_CLOEXEC);
  }
  if (dup2(null, 0) == -1 || dup2(null, 1) == -1) _exit(111);
  if (null > 3) close(null);
  signal(SIGPIPE, SIG_DFL);
  execvp(argv[0], argv);
  _exit(111);
}

/* spawn - the child on its own frame, so that vfork() cannot clobber the caller's locals */
static pid_t spawn(char **argv, int fd, int null)
{
  pid_t pid = vfork();
  if (!pid) child(argv, fd, null);
  return pid;
}

/* reap - wait for pid until deadline on its pidfd; kill it at the deadline */
static int reap(pid_t pid, int pidfd, long long deadline)
{
  int st, r = proc_wait(pid, pidfd, &st, deadline);
  if (pidfd >= 0) close(pidfd);
  if (r == -1) return AUTH_ECHILD;
  if (!r) {
    kill(pid, SIGKILL);
    while (waitpid(pid, &st, 0) == -1 && errno == EINTR) {}
    return AUTH_ECHILD;
  }
  if (!WIFEXITED(st)) return AUTH_ECHILD;
  /* checkpassword's 111 is a temporary problem (and our own exec failure), not a refusal */
  return WEXITSTATUS(st) == 111 ? AUTH_ECHILD : WEXITSTATUS(st) ? 1 : 0;
}

/* putcreds - write buf[w..n) to the non-blocking pipe until it is full or fails; new w */
static int putcreds(int fd, const char *buf, size_t n, int w)
{
  while (w < (int)n) {
    ssize_t r = write(fd, buf + w, n - (size_t)w);
    if (r <= 0 && errno != EINTR) break;
    if (r > 0) w += (int)r;
  }
  return w;
}

int auth_checkpw(char **argv, const char *user, const char *pass, const char *chal,
                 unsigned long timeout_ms)
{
  static char buf[3 * (AUTH_LINE_MAX + 1)];
  size_t n = 0, lu = strlen(user), lp = strlen(pass), lc = strlen(chal);
  int p[2], w = 0, null, pidfd;
  pid_t pid;
  long long deadline = proc_now_ms() + (long long)timeout_ms;
  if (lu + lp + lc + 3 > sizeof buf) return 1;
  if (pipe(p) == -1) return AUTH_EPIPE;
  /* our end is close-on-exec, so the child does not need to close it */
  if (fcntl(p[1], F_SETFD, FD_CLOEXEC) == -1 ||
      (null = open("/dev/null", O_RDWR | O_CLOEXEC)) == -1) {
    close(p[0]); close(p[1]);
    return AUTH_EPIPE;
  }
  memcpy(buf, user, lu + 1); n = lu + 1;
  memcpy(buf + n, pass, lp + 1); n += lp + 1;
  memcpy(buf + n, chal, lc + 1); n += lc + 1;
  /* at most 36 KB, written before the child exists: it fits in a pipe (64 KB unless the
   * user's pipe pages are limited), so neither a child that never reads nor one that is
   * already gone (EPIPE) matters; what did not fit is written after the start */
  fcntl(p[1], F_SETFL, O_NONBLOCK);
  w = putcreds(p[1], buf, n, 0);
  pid = spawn(argv, p[0], null);
  if (pid == -1) { memset(buf, 0, n); close(p[0]); close(p[1]); close(null); return AUTH_EFORK; }
  close(p[0]);
  close(null);
  pidfd = proc_pidfd(pid);
  if (w < (int)n) w = putcreds(p[1], buf, n, w);
  memset(buf, 0, n);
  close(p[1]);
  n = (size_t)w == n;
  w = reap(pid, pidfd, deadline);
  if (!n && !w) return AUTH_EWRITE;
  return w;
}

/* auth_smtp_call - qmail-ldap's bin/auth_smtp: data (len bytes) on its stdin, the answer from
 * its stdout into ans (at most size-1 bytes, NUL-terminated). 0 ok (*anslen set), or AUTH_E* */
static int auth_smtp_call(const char *data, size_t len, char *ans, size_t size, size_t *anslen,
                          unsigned long timeout_ms)
{
  int in[2], out[2], st, dead = 0, pidfd;
  size_t w = 0, n = 0;
  pid_t pid;
  long long deadline = proc_now_ms() + (long long)timeout_ms;
  if (pipe(in) == -1) return AUTH_EPIPE;
  if (pipe(out) == -1) { close(in[0]); close(in[1]); return AUTH_EPIPE; }
  pid = fork();
  if (pid == -1) {
    close(in[0]); close(in[1]); close(out[0]); close(out[1]);
    return AUTH_EFORK;
  }
  if (!pid) {
    if (dup2(in[0], 0) == -1 || dup2(out[1], 1) == -1) _exit(111);
    close(in[0]); close(in[1]); close(out[0]); close(out[1]);
    if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == -1) {  /* only what the protocol gives */
      int i;
      for (i = 3; i < 1024; ++i) fcntl(i, F_SETFD, FD_CLOEXEC);
    }
    signal(SIGPIPE, SIG_DFL);
    execv(smtp_argv[0], smtp_argv);
    _exit(111);
  }
  close(in[0]);
  close(out[1]);
  pidfd = proc_pidfd(pid);
  fcntl(in[1], F_SETFL, O_NONBLOCK);
  while (w < len) {  /* a few hundred bytes at most: fits in the pipe */
    ssize_t r = write(in[1], data + w, len - w);
    if (r <= 0 && errno != EINTR) break;
    if (r > 0) w += (size_t)r;
  }
  close(in[1]);
  for (;;) {  /* its answer, until EOF, within the deadline */
    struct pollfd pfd;
    long long left = deadline - proc_now_ms();
    ssize_t r;
    if (left <= 0) { dead = 1; break; }
    pfd.fd = out[0];
    pfd.events = POLLIN;
    if (poll(&pfd, 1, (int)(left > 1000 ? 1000 : left)) <= 0) continue;
    r = read(out[0], ans + n, size - 1 - n);
    if (r == -1 && errno == EINTR) continue;
    if (r <= 0) break;
    n += (size_t)r;
    if (n == size - 1) break;
  }
  close(out[0]);
  ans[n] = 0;
  *anslen = n;
  if (dead) kill(pid, SIGKILL);
  st = reap(pid, pidfd, dead ? proc_now_ms() + 1000 : deadline);
  if (dead || st == AUTH_ECHILD || st) return AUTH_ECHILD;  /* qmail-ldap: exit != 0 is 454 */
  return w == len ? 0 : AUTH_EWRITE;
}

static struct decision qmailreply(int code, const char *text, const char *esc, const char *why)
{
  struct decision d = DECISION_NONE;
  d.code = code; d.text = text; d.esc = esc; d.qmail = 1; d.reason = why;
  return d;
}

static struct decision malformed(void)
{
  return qmailreply(501, "malformed auth input", "5.5.4", "auth_malformed");
}

/* readb64 - one client line, decoded into out; 0 ok, 1 aborted by "*", -1 malformed */
static int readb64(const struct auth_io *io, const char *prompt, char *out, size_t *len)
{
  int r;
  io->prompt(prompt);
  r = io->getline(resp, sizeof resp);
  if (r < 0) return -2;
  if (!r) return -1;
  if (!strcmp(resp, "*")) return 1;
  if (!*resp) return -1;
  return auth_b64decode(resp, strlen(resp), out, len);
}

static int user_ok(const char *u)
{
  size_t i, n = strlen(u);
  if (!n || n > AUTH_USER_MAX) return 0;
  for (i = 0; i < n; ++i)
    if ((unsigned char)u[i] < 32 || u[i] == 127) return 0;
  return 1;
}

/* granted - the authenticated name, AUTHPREPEND (qmail-ldap) before it */
static void granted(const char *user, size_t len)
{
  const char *pre = getenv("AUTHPREPEND");
  size_t n = pre ? strlen(pre) : 0;
  if (n > AUTH_PREPEND_MAX) n = AUTH_PREPEND_MAX;
  if (len > AUTH_USER_MAX) len = AUTH_USER_MAX;
  memcpy(user_out, pre ? pre : "", n);
  memcpy(user_out + n, user, len);
  user_out[n + len] = 0;
}

/* ldapcheck - the question to bin/auth_smtp: 0 good (user_out set), 1 refused, -1 malformed,
 * or AUTH_E* */
static int ldapcheck(const char *method, const char *user, const char *pass)
{
  static char buf[4 * AUTH_LINE_MAX + 64], raw[AUTH_LINE_MAX + 2], ans[AUTH_USER_MAX + 3];
  size_t n, lu = strlen(user), lp = strlen(pass), alen = 0;
  int r;
  if (lu + lp + 2 > AUTH_LINE_MAX) return 1;
  n = strlen(method) + 1;
  memcpy(buf, method, n);
  if (!strcmp(method, "login")) {
    n += auth_b64encode(user, lu, buf + n) + 1;
    n += auth_b64encode(pass, lp, buf + n) + 1;
  } else {  /* plain: NUL user NUL pass */
    raw[0] = 0;
    memcpy(raw + 1, user, lu + 1);
    memcpy(raw + lu + 2, pass, lp);
    n += auth_b64encode(raw, lu + lp + 2, buf + n) + 1;
    memset(raw, 0, sizeof raw);
  }
  r = auth_smtp_call(buf, n, ans, sizeof ans, &alen, env_ulong("AUTHTIMEOUT", 30) * 1000);
  memset(buf, 0, sizeof buf);
  if (r) return r;
  if (alen >= 2 && ans[0] == 'K' && user_ok(ans + 1)) {  /* K name, its NUL optional */
    granted(ans + 1, strlen(ans + 1));
    return 0;
  }
  if (alen >= 1 && ans[0] == 'D') return 1;
  if (alen >= 1 && ans[0] == 'Z') return -1;
  return AUTH_ECHILD;
}

static struct decision check(const char *user, const char *pass, const char *chal)
{
  struct decision d;
  int r;
  if (!user_ok(user) || !*pass) return malformed();
  if (ldapmode) {
    r = ldapcheck(curmech, user, pass);
    if (r == -1) return qmailreply(501, "authentication exchange failed", "5.5.4", "auth_malformed");
    if (r == 0) return qmailreply(235, "ok, go ahead", "2.0.0", "auth");
  } else
    r = auth_checkpw(checkprog, user, pass, chal, env_ulong("AUTHTIMEOUT", 30) * 1000);
  if (r == 0) {
    granted(user, strlen(user));
    return qmailreply(235, "ok, go ahead", "2.0.0", "auth");
  }
  if (r == 1) {
    d = qmailreply(535, "authentication failed", "5.7.1", "auth_failed");
    d.delay_ms = (unsigned)(env_ulong("AUTHDELAY", 5) * 1000);
    if (++failures >= (int)env_ulong("AUTHFAILMAX", 5)) d.drop = 1;
    return d;
  }
  if (r == AUTH_EPIPE)
    return qmailreply(454, "oops, unable to open pipe and I can't auth", "4.3.0", "auth_error");
  if (r == AUTH_EFORK)
    return qmailreply(454, "oops, child won't start and I can't auth", "4.3.0", "auth_error");
  if (r == AUTH_EWRITE)
    return qmailreply(454, "oops, unable to write pipe and I can't auth", "4.3.0", "auth_error");
  return qmailreply(454, "oops, problem with child and I can't auth", "4.3.0", "auth_error");
}

static struct decision exchange(int r)
{
  if (r == -2) return qmailreply(421, "connection lost", "4.4.2", "auth_eof");
  if (r == 1) return qmailreply(501, "auth exchange canceled", "5.0.0", "auth_canceled");
  return malformed();
}

static struct decision do_plain(const char *init, const struct auth_io *io)
{
  size_t len;
  int r;
  const char *u, *p;
  if (init) {
    if (!strcmp(init, "=")) return malformed();
    r = auth_b64decode(init, strlen(init), dec, &len);
  } else
    r = readb64(io, "", dec, &len);
  if (r) return exchange(r);
  if (auth_plain(dec, len, &u, &p)) return malformed();
  return check(u, p, "");
}

static struct decision do_login(const char *init, const struct auth_io *io)
{
  size_t ulen, plen;
  int r;
  if (init) r = auth_b64decode(init, strlen(init), dec, &ulen);
  else r = readb64(io, "VXNlcm5hbWU6", dec, &ulen);
  if (r) return exchange(r);
  if (!ulen || memchr(dec, 0, ulen) || !clean(dec, ulen)) return malformed();
  dec[ulen] = 0;
  r = readb64(io, "UGFzc3dvcmQ6", dec2, &plen);
  if (r) return exchange(r);
  if (!plen || memchr(dec2, 0, plen) || !clean(dec2, plen)) return malformed();
  dec2[plen] = 0;
  return check(dec, dec2, "");
}

static struct decision do_cram(const char *init, const struct auth_io *io)
{
  static char chal[AUTH_USER_MAX + 64], enc[sizeof chal * 2];
  size_t len, n;
  int r;
  const char *u, *dg;
  if (init) return malformed();  /* CRAM-MD5 has no initial response */
  n = 0;
  chal[n++] = '<';
  n += (size_t)snprintf(chal + n, sizeof chal - n, "%lu.%lu@%.*s>", (unsigned long)getpid(),
                        (unsigned long)time(0), AUTH_USER_MAX, cram_host ? cram_host : "unknown");
  auth_b64encode(chal, n, enc);
  r = readb64(io, enc, dec, &len);
  if (r) return exchange(r);
  if (auth_cram_split(dec, len, &u, &dg)) return malformed();
  return check(u, dg, chal);
}

struct decision auth_command(const char *arg, const struct auth_io *io, const char **user,
                             const char **method)
{
  static const struct {
    const char *name, *method;
    unsigned bit;
    struct decision (*fn)(const char *, const struct auth_io *);
  } mechs[] = {
    {"plain", "plain", AUTH_PLAIN, do_plain},
    {"login", "login", AUTH_LOGIN, do_login},
    {"cram-md5", "cram-md5", AUTH_CRAM, do_cram},
  };
  size_t i, n = strcspn(arg, " ");
  const char *init = arg + n;
  struct decision d;
  while (*init == ' ') ++init;
  if (!*init) init = 0;
  if (!n) return qmailreply(501, "auth type missing", "5.5.4", "auth_syntax");
  for (i = 0; i < sizeof mechs / sizeof mechs[0]; ++i)
    if (n == strlen(mechs[i].name) && !strncasecmp(arg, mechs[i].name, n) &&
        (methods & mechs[i].bit))
      break;
  if (i == sizeof mechs / sizeof mechs[0])
    return qmailreply(504, "auth type invalid", "5.5.1", "auth_type");
  *method = curmech = mechs[i].method;
  d = mechs[i].fn(init, io);
  zero();
  if (d.code == 235) *user = user_out;
  return d;
}
