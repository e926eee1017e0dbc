/* tests/qq-recorder.c - a strict stand-in for qmail-queue, used as QMAILQUEUE by the
 * integration tests. It speaks qmail-queue's protocol and checks it harder than qmail-queue
 * does: the message is read from fd 0 to EOF, then the envelope from fd 1, which must be
 * exactly "F" sender NUL, one or more "T" recipient NUL, one final NUL, then EOF.
 *   - EOF or a read error before the envelope is complete: exit 54 (qmail-queue's "unable to
 *     read the message or envelope"), nothing stored;
 *   - a malformed envelope (no F, no T, a byte other than T or NUL between recipients,
 *     anything after the final NUL): exit 91 ("bad envelope format"), nothing stored;
 *   - an address of 1003 bytes or more: exit 11, as qmail-queue.
 * Each problem is described on stderr (the smtpd's log). A good message is stored atomically
 * (write a temporary file, then rename) as $QQ_DIR/<pid>.msg and then $QQ_DIR/<pid>.env, so
 * a test that sees the .env file sees both, and the pid in the name is the "qp" the smtpd
 * reports. Every run, stored or not, appends one line to $QQ_DIR/runs:
 *   "pid=N result=stored|refused exit=N why=TEXT".
 * Options (environment): QQ_EXIT=n exit with n after reading everything and store nothing
 * unless n is 0; QQ_ERRTEXT=text write text to fd 6 (notqmail's custom error channel; the
 * exit code then defaults to 82); QQ_CRASH=1 kill itself with SIGSEGV after reading;
 * QQ_SLEEP=seconds sleep after reading, before storing (a hanging qmail-queue); QQ_CLOSE6=1
 * close fd 6 at once instead of holding it until exit as qmail-queue does; QQ_NOREAD=seconds
 * sleep that long before reading anything, then exit 0 without reading (a qmail-queue that
 * stops reading). At start it appends its pid to $QQ_DIR/started and writes the list of its
 * open descriptors to $QQ_DIR/<pid>.fds ("0 1 2 6"), so tests can see leaked descriptors. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/resource.h>

#define ADDR_LIMIT 1003  /* qmail-queue: an address of this length or more is exit 11 */

static const char *qqdir;
static char pidstr[32];

struct buf { char *s; size_t len, cap; };

static void runline(const char *result, int code, const char *why)
{
  char line[512];
  int fd, n;
  if (!qqdir) return;
  snprintf(line, sizeof line, "%s/runs", qqdir);
  fd = open(line, O_WRONLY | O_APPEND | O_CREAT, 0644);
  if (fd == -1) return;
  n = snprintf(line, sizeof line, "pid=%s result=%s exit=%d why=%s\n", pidstr, result, code, why);
  if (n > 0 && write(fd, line, (size_t)n) != n) { /* nothing more to do */ }
  close(fd);
}

static void fail(int code, const char *why)
{
  fprintf(stderr, "qq-recorder: pid=%s exit=%d: %s\n", pidstr, code, why);
  runline("refused", code, why);
  _exit(code);
}

/* slurp - read fd to EOF; 0, or -1 on a read error */
static int slurp(int fd, struct buf *b)
{
  for (;;) {
    ssize_t r;
    if (b->cap - b->len < 65536) {
      size_t cap = b->cap ? b->cap * 2 : 131072;
      char *s = realloc(b->s, cap);
      if (!s) fail(51, "out of memory");
      b->s = s;
      b->cap = cap;
    }
    r = read(fd, b->s + b->len, b->cap - b->len);
    if (r == 0) return 0;
    if (r == -1) {
      if (errno == EINTR) continue;
      return -1;
    }
    b->len += (size_t)r;
  }
}

/* address - the NUL-terminated address starting at e[*pos]; leaves *pos after the NUL */
static void address(const struct buf *e, size_t *pos, const char *what)
{
  const char *nul = memchr(e->s + *pos, 0, e->len - *pos);
  char why[128];
  if (!nul) {
    snprintf(why, sizeof why, "envelope ends inside the %s address", what);
    fail(54, why);
  }
  if ((size_t)(nul - (e->s + *pos)) >= ADDR_LIMIT) {
    snprintf(why, sizeof why, "%s address too long", what);
    fail(11, why);
  }
  *pos = (size_t)(nul - e->s) + 1;
}

/* checkenv - the strict envelope check; returns the number of recipients */
static unsigned checkenv(const struct buf *e)
{
  size_t pos = 0;
  unsigned n = 0;
  char why[128];
  if (!e->len) fail(54, "empty envelope (EOF before F)");
  if (e->s[0] != 'F') {
    snprintf(why, sizeof why, "envelope starts with byte 0x%02x, not F", (unsigned char)e->s[0]);
    fail(91, why);
  }
  pos = 1;
  address(e, &pos, "sender");
  for (;;) {
    if (pos >= e->len) fail(54, "envelope ends before the final NUL");
    if (!e->s[pos]) { ++pos; break; }
    if (e->s[pos] != 'T') {
      snprintf(why, sizeof why, "byte 0x%02x at envelope offset %lu, expected T or NUL",
               (unsigned char)e->s[pos], (unsigned long)pos);
      fail(91, why);
    }
    ++pos;
    address(e, &pos, "recipient");
    ++n;
  }
  if (!n) fail(91, "envelope without a recipient");
  if (pos != e->len) {
    snprintf(why, sizeof why, "%lu bytes after the final NUL", (unsigned long)(e->len - pos));
    fail(91, why);
  }
  return n;
}

static void append(const char *name, const char *text)
{
  char fn[4096];
  int fd;
  size_t len = strlen(text);
  snprintf(fn, sizeof fn, "%s/%s", qqdir, name);
  fd = open(fn, O_WRONLY | O_APPEND | O_CREAT, 0644);
  if (fd == -1) return;
  if (write(fd, text, len) != (ssize_t)len) { /* nothing more to do */ }
  close(fd);
}

/* fds - the open descriptors, as "0 1 2 6\n", into $QQ_DIR/<pid>.fds */
static void fds(void)
{
  char list[1024], name[64];
  size_t n = 0;
  int seen[1024] = {0}, i, self;
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  if (!d) return;
  self = dirfd(d);
  while ((e = readdir(d)))
    if (e->d_name[0] >= '0' && e->d_name[0] <= '9') {
      i = atoi(e->d_name);
      if (i != self && i >= 0 && i < 1024) seen[i] = 1;
    }
  closedir(d);
  for (i = 0; i < 1024 && n < sizeof list - 8; ++i)
    if (seen[i]) n += (size_t)snprintf(list + n, sizeof list - n, n ? " %d" : "%d", i);
  list[n++] = '\n';
  list[n] = 0;
  snprintf(name, sizeof name, "%s.fds", pidstr);
  append(name, list);
}

static void store(const char *ext, const struct buf *b)
{
  char tmp[4096], fin[4096];
  int fd;
  size_t done = 0;
  snprintf(tmp, sizeof tmp, "%s/tmp.%s.%s", qqdir, pidstr, ext);
  snprintf(fin, sizeof fin, "%s/%s.%s", qqdir, pidstr, ext);
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd == -1) fail(53, "cannot create the temporary file");
  while (done < b->len) {
    ssize_t w = write(fd, b->s + done, b->len - done);
    if (w == -1) {
      if (errno == EINTR) continue;
      fail(53, "write error");
    }
    done += (size_t)w;
  }
  if (fsync(fd) == -1 || close(fd) == -1) fail(53, "write error");
  if (rename(tmp, fin) == -1) fail(53, "rename failed");
}

int main(void)
{
  struct buf msg = {0, 0, 0}, env = {0, 0, 0};
  const char *x;
  int code = 0;
  unsigned n;
  char why[64];
  struct rlimit nocore = {0, 0};

  snprintf(pidstr, sizeof pidstr, "%ld", (long)getpid());
  qqdir = getenv("QQ_DIR");
  if (!qqdir || !*qqdir) { qqdir = 0; fail(55, "QQ_DIR is not set"); }
  fds();
  snprintf(why, sizeof why, "%s\n", pidstr);
  append("started", why);
  if ((x = getenv("QQ_NOREAD")) && *x) {
    sleep((unsigned)atoi(x));
    runline("refused", 0, "QQ_NOREAD: exit 0 without reading");
    _exit(0);
  }
  if ((x = getenv("QQ_ERRTEXT"))) {
    size_t len = strlen(x);
    code = 82;
    if (write(6, x, len) != (ssize_t)len) fprintf(stderr, "qq-recorder: cannot write fd 6\n");
  }
  if ((x = getenv("QQ_EXIT")) && *x) code = atoi(x);
  if ((x = getenv("QQ_CLOSE6")) && *x == '1') close(6);  /* else held until exit, as qmail-queue */

  if (slurp(0, &msg) == -1) fail(54, "read error on the message (fd 0)");
  if (slurp(1, &env) == -1) fail(54, "read error on the envelope (fd 1)");
  n = checkenv(&env);

  if ((x = getenv("QQ_CRASH")) && *x == '1') {
    setrlimit(RLIMIT_CORE, &nocore);
    runline("refused", -SIGSEGV, "crash requested");
    signal(SIGSEGV, SIG_DFL);
    raise(SIGSEGV);
    _exit(111);
  }
  if ((x = getenv("QQ_SLEEP")) && *x) sleep((unsigned)atoi(x));
  if (code) {
    snprintf(why, sizeof why, "QQ_EXIT=%d", code);
    runline("refused", code, why);
    _exit(code);
  }
  store("msg", &msg);
  store("env", &env);
  snprintf(why, sizeof why, "%u recipients", n);
  runline("stored", 0, why);
  return 0;
}
