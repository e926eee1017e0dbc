/* queue.c - hands an accepted message to qmail-queue with its protocol: vfork and exec
 * $QMAILQUEUE (relative to the qmail home) or bin/qmail-queue before the 354, the message on
 * its fd 0, the envelope (F sender NUL, T recipient NUL..., NUL) on its fd 1, and notqmail's
 * custom error channel on its fd 6. Writes the stock Received line. Maps the exit status to
 * a reply exactly as qmail's qmail_close() does: 11-40 permanent, everything else, a crash or
 * a failed wait temporary. Every write and the wait have a deadline: a qmail-queue that stops
 * reading or never exits is killed, and the client gets a 451. The wait is one poll() on the
 * fd 6 pipe and the child's pidfd (proc.c): no sleep, and a qmail-queue that exits while
 * something else (a child of its own) keeps fd 6 open is reaped at once, its exit status
 * counts. */
#define _GNU_SOURCE  /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <linux/close_range.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
#include <fmt.h>
#include "proc.h"
#include "queue.h"

static long long deadline_ms = 1200000;

void qq_settimeout(unsigned long seconds)
{
  deadline_ms = seconds > 86400UL ? 86400000LL : (long long)seconds * 1000;
}

static long long now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ready - wait until fd is ready for events or the deadline passes */
static int ready(int fd, short events, long long until)
{
  struct pollfd p;
  for (;;) {
    long long now = now_ms();
    int r;
    if (now >= until) return 0;
    p.fd = fd; p.events = events; p.revents = 0;
    r = poll(&p, 1, (int)(until - now));
    if (r > 0) return 1;
    if (r == -1 && errno != EINTR) return 1;
  }
}

static struct qq *current;  /* the one qmail-queue this process feeds */

/* qqwrite - the buffer's op. It records a failure itself: Debian's libowfat 0.32
 * buffer_flush() loses the -1 of its op (an int/ssize_t mix-up), so a failed or timed-out
 * write would otherwise go unnoticed and a message could be lost after a 250. Once failed,
 * it swallows what follows instead of waiting again. */
static ssize_t qqwrite(int fd, const char *buf, size_t len)
{
  long long until = now_ms() + deadline_ms;
  if (current->err) return (ssize_t)len;
  for (;;) {
    ssize_t w;
    if (!ready(fd, POLLOUT, until)) break;
    w = write(fd, buf, len);
    if (w >= 0) return w;
    if (errno != EINTR && errno != EAGAIN) break;
  }
  current->err = 1;
  return (ssize_t)len;
}

/* high - a copy of fd above the child's three targets, without FD_CLOEXEC */
static int high(int fd) { return fcntl(fd, F_DUPFD, 10); }

/* child - runs inside vfork(): only system calls on its own locals, then exec or _exit */
static void child(char **argv, int m, int e, int c)
{
  if ((m = high(m)) == -1 || (e = high(e)) == -1 || (c = high(c)) == -1) _exit(120);
  /* whatever else is open (a library's socket, a cdb) is not qmail-queue's: close-on-exec;
   * dup2 below clears the flag on the three targets */
  if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == -1) {
    int fd;
    for (fd = 3; fd < 1024; ++fd) fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  if (dup2(m, 0) == -1 || dup2(e, 1) == -1 || dup2(c, QQ_ERRFD) == -1) _exit(120);
  close(m); close(e); close(c);  /* the pipes themselves are close-on-exec */
  execv(argv[0], argv);
  _exit(120);
}

static void closepair(int p[2]) { close(p[0]); close(p[1]); }

int qq_open(struct qq *q)
{
  int pm[2], pe[2], pc[2];
  char *argv[2];
  argv[0] = getenv("QMAILQUEUE");
  if (!argv[0]) argv[0] = (char *)"bin/qmail-queue";
  argv[1] = 0;
  if (pipe2(pm, O_CLOEXEC) == -1) return -1;
  if (pipe2(pe, O_CLOEXEC) == -1) { closepair(pm); return -1; }
  if (pipe2(pc, O_CLOEXEC) == -1) { closepair(pm); closepair(pe); return -1; }
  /* vfork: no copy of our page tables; we resume once the child has exec'd (or failed) */
  q->pid = vfork();
  if (q->pid == -1) { closepair(pm); closepair(pe); closepair(pc); return -1; }
  if (!q->pid) child(argv, pm[0], pe[0], pc[1]);
  close(pm[0]); close(pe[0]); close(pc[1]);
  q->pidfd = proc_pidfd(q->pid);
  q->fdm = pm[1]; q->fde = pe[1]; q->fdc = pc[0];
  /* non-blocking, so that poll() deadlines hold even for a qmail-queue that stops reading */
  fcntl(q->fdm, F_SETFL, O_NONBLOCK);
  fcntl(q->fde, F_SETFL, O_NONBLOCK);
  fcntl(q->fdc, F_SETFL, O_NONBLOCK);
  q->err = 0;
  current = q;
  buffer_init(&q->b, qqwrite, q->fdm, q->buf, sizeof q->buf);
  return 0;
}

void qq_put(struct qq *q, const char *s, size_t len)
{
  if (!q->err) buffer_put(&q->b, s, len);
}

void qq_fail(struct qq *q) { q->err = 1; }

static void safeput(struct qq *q, const char *s)
{
  char out[256];
  size_t n = 0;
  for (; *s; ++s) {
    char ch = *s;
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          strchr(".@%+/=:-[]", ch)))
      ch = '?';
    out[n++] = ch;
    if (n == sizeof out) { qq_put(q, out, n); n = 0; }
  }
  qq_put(q, out, n);
}

static size_t two(char *out, int v)
{
  out[0] = (char)('0' + v / 10 % 10);
  out[1] = (char)('0' + v % 10);
  return 2;
}

/* qq_fmtdate - RFC 822 date in UTC as qmail's date822fmt writes it. Computed from the day
 * count (the proleptic Gregorian civil-from-days arithmetic) rather than with gmtime_r, which
 * in glibc runs tzset and reads /etc/localtime for every message. */
size_t qq_fmtdate(char *out, long t)
{
  static const char mon[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  long days = t / 86400, secs = t % 86400, z, era, year;
  unsigned long doe, yoe, doy, mp, day, month;
  size_t n = 0;
  if (secs < 0) { secs += 86400; --days; }
  z = days + 719468;  /* days since 0000-03-01 */
  era = (z >= 0 ? z : z - 146096) / 146097;
  doe = (unsigned long)(z - era * 146097);                          /* [0, 146096] */
  yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;      /* [0, 399] */
  doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                    /* [0, 365] */
  mp = (5 * doy + 2) / 153;                                         /* March = 0 */
  day = doy - (153 * mp + 2) / 5 + 1;
  month = mp < 10 ? mp + 3 : mp - 9;
  year = (long)yoe + era * 400 + (month <= 2);
  n += fmt_ulong(out + n, day);
  out[n++] = ' ';
  memcpy(out + n, mon[month - 1], 3); n += 3;
  out[n++] = ' ';
  n += fmt_ulong(out + n, (unsigned long)year);
  out[n++] = ' ';
  n += two(out + n, (int)(secs / 3600));
  out[n++] = ':';
  n += two(out + n, (int)(secs / 60 % 60));
  out[n++] = ':';
  n += two(out + n, (int)(secs % 60));
  memcpy(out + n, " -0000", 6);
  return n + 6;
}

void qq_received(struct qq *q, const char *protocol, const char *local, const char *remoteip,
                 const char *remotehost, const char *remoteinfo, const char *helo)
{
  char date[64];
  qq_put(q, "Received: from ", 15);
  safeput(q, remotehost);
  if (helo) { qq_put(q, " (HELO ", 7); safeput(q, helo); qq_put(q, ")", 1); }
  qq_put(q, " (", 2);
  if (remoteinfo) { safeput(q, remoteinfo); qq_put(q, "@", 1); }
  safeput(q, remoteip);
  qq_put(q, ")\n  by ", 7);
  safeput(q, local);
  qq_put(q, " with ", 6);
  qq_put(q, protocol, strlen(protocol));
  qq_put(q, "; ", 2);
  qq_put(q, date, qq_fmtdate(date, (long)time(0)));
  qq_put(q, "\n", 1);
}

static const struct { int code; const char *text; } exitmsg[] = {
  {11, "Denvelope address too long for qq (#5.1.3)"},
  {115, "Denvelope address too long for qq (#5.1.3)"},
  {31, "Dmail server permanently rejected message (#5.3.0)"},
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
};

const char *qq_exitmsg(int exitcode)
{
  size_t i;
  for (i = 0; i < sizeof exitmsg / sizeof exitmsg[0]; ++i)
    if (exitmsg[i].code == exitcode) return exitmsg[i].text;
  if (exitcode >= 11 && exitcode <= 40) return "Dqq permanent problem (#5.3.0)";
  return "Zqq temporary problem (#4.3.0)";
}

/* take - append what qmail-queue wrote on fd 6 to the custom error text: at most
 * QQ_ERRTEXT_MAX bytes, cut at the first CR, LF or NUL so it cannot break the reply */
static void take(const char *tmp, size_t r, char *out, size_t *len, int *cut)
{
  size_t i;
  for (i = 0; i < r && !*cut; ++i) {
    if (tmp[i] == '\r' || tmp[i] == '\n' || !tmp[i] || *len == QQ_ERRTEXT_MAX) { *cut = 1; break; }
    out[(*len)++] = tmp[i];
  }
}

/* drain - read fd 6 until it would block (0) or EOF (1); a bounded number of reads, since
 * whatever holds it open may keep writing */
static int drain(int fd, char *out, size_t *len, int *cut)
{
  char tmp[512];
  int i;
  for (i = 0; i < 64; ++i) {
    ssize_t r = read(fd, tmp, sizeof tmp);
    if (r == -1 && errno == EINTR) continue;
    if (r == -1 && errno == EAGAIN) return 0;
    if (r <= 0) return 1;
    take(tmp, (size_t)r, out, len, cut);
  }
  return 0;
}

/* finish - the custom error text and the exit, before the deadline. qmail's rule is fd 6 to
 * EOF, then the exit status; with a pidfd the exit ends the wait even when fd 6 is still held
 * open elsewhere (what the child wrote before exiting is in the pipe and is read first).
 * 1 exited (*wstat set), 0 deadline passed, -1 wait error */
static int finish(struct qq *q, char *out, size_t *len, int *wstat, long long until)
{
  int eof = 0, cut = 0;
  *len = 0;
  for (;;) {
    struct pollfd p[2];
    long long left;
    int n = 0, r;
    if (eof) return proc_wait(q->pid, q->pidfd, wstat, until);
    left = until - proc_now_ms();
    if (left <= 0) return 0;
    p[n].fd = q->fdc; p[n].events = POLLIN; p[n++].revents = 0;
    if (q->pidfd >= 0) { p[n].fd = q->pidfd; p[n].events = POLLIN; p[n++].revents = 0; }
    r = poll(p, (nfds_t)n, left > 86400000 ? 86400000 : (int)left);
    if (r == -1 && errno != EINTR) return -1;
    if (r <= 0) continue;
    if (p[0].revents) eof = drain(q->fdc, out, len, &cut);
    if (n == 2 && p[1].revents) {
      r = proc_reaped(q->pid, wstat);
      if (r) { if (!eof) drain(q->fdc, out, len, &cut); return r; }
    }
  }
}

static int lastwait = -1;  /* the wait status qq_close saw, for the log */

int qq_lastwait(void) { return lastwait; }

const char *qq_close(struct qq *q, const char *from, size_t fromlen, const char *rcptto, size_t len)
{
  static char custom[QQ_ERRTEXT_MAX + 1];
  size_t clen;
  int wstat, code, exited;
  long long until;
  if (!q->err) buffer_flush(&q->b);
  close(q->fdm);
  buffer_init(&q->b, qqwrite, q->fde, q->buf, sizeof q->buf);
  qq_put(q, "F", 1);
  qq_put(q, from, fromlen);
  qq_put(q, "", 1);
  qq_put(q, rcptto, len);
  qq_put(q, "", 1);
  if (!q->err) buffer_flush(&q->b);
  close(q->fde);
  until = now_ms() + deadline_ms;
  exited = finish(q, custom, &clen, &wstat, until);
  close(q->fdc);
  lastwait = -1;
  if (q->pidfd >= 0) close(q->pidfd);
  if (exited == -1) return "Zqq waitpid surprise (#4.3.0)";
  if (!exited) {
    kill(q->pid, SIGKILL);
    while (waitpid(q->pid, &wstat, 0) == -1)
      if (errno != EINTR) return "Zqq waitpid surprise (#4.3.0)";
  }
  lastwait = wstat;
  if (WIFSIGNALED(wstat)) return exited ? "Zqq crashed (#4.3.0)" : "Zqq timeout (#4.3.0)";
  code = WEXITSTATUS(wstat);
  if (code == 0) return q->err ? "Zqq read error (#4.3.0)" : "";
  if (code == 82) {
    if (clen > 2) { custom[clen] = 0; return custom; }
    return "Zqq temporary problem (#4.3.0)";
  }
  return qq_exitmsg(code);
}
