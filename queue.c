/* queue.c - hands an accepted message to qmail-queue with its protocol: fork and exec
 * $QMAILQUEUE (relative to the qmail home) or bin/qmail-queue before the 354, the message on
 * its fd 0, the envelope (F sender NUL, T recipient NUL..., NUL) on its fd 1, and notqmail's
 * custom error channel on its fd 6. Writes the stock Received line. Maps the exit status to
 * a reply exactly as qmail's qmail_close() does: 11-40 permanent, everything else, a crash or
 * a failed wait temporary. Every write and the wait have a deadline: a qmail-queue that stops
 * reading or never exits is killed, and the client gets a 451. */
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

static void child(int m, int e, int c)
{
  const char *prog = getenv("QMAILQUEUE");
  char *argv[2];
  if (!prog) prog = "bin/qmail-queue";
  if ((m = high(m)) == -1 || (e = high(e)) == -1 || (c = high(c)) == -1) _exit(120);
  /* whatever else is open (a library's socket, a cdb) is not qmail-queue's: close-on-exec;
   * dup2 below clears the flag on the three targets */
  if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == -1) {
    int fd;
    for (fd = 3; fd < 1024; ++fd) fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  if (dup2(m, 0) == -1 || dup2(e, 1) == -1 || dup2(c, QQ_ERRFD) == -1) _exit(120);
  close(m); close(e); close(c);  /* the pipes themselves are close-on-exec */
  argv[0] = (char *)prog;
  argv[1] = 0;
  execv(prog, argv);
  _exit(120);
}

static void closepair(int p[2]) { close(p[0]); close(p[1]); }

int qq_open(struct qq *q)
{
  int pm[2], pe[2], pc[2];
  if (pipe2(pm, O_CLOEXEC) == -1) return -1;
  if (pipe2(pe, O_CLOEXEC) == -1) { closepair(pm); return -1; }
  if (pipe2(pc, O_CLOEXEC) == -1) { closepair(pm); closepair(pe); return -1; }
  q->pid = fork();
  if (q->pid == -1) { closepair(pm); closepair(pe); closepair(pc); return -1; }
  if (!q->pid) child(pm[0], pe[0], pc[1]);
  close(pm[0]); close(pe[0]); close(pc[1]);
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

/* readerr - the custom error text, until EOF (the child exited) or the deadline; cut at
 * QQ_ERRTEXT_MAX bytes and at the first CR or LF so it cannot break the reply.
 * 1: EOF seen; 0: deadline passed */
static int readerr(int fd, char *out, size_t *len, long long until)
{
  char tmp[512];
  int cut = 0;
  *len = 0;
  for (;;) {
    ssize_t r;
    size_t i;
    if (!ready(fd, POLLIN, until)) return 0;
    r = read(fd, tmp, sizeof tmp);
    if (r == -1 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r <= 0) return 1;
    for (i = 0; i < (size_t)r && !cut; ++i) {
      if (tmp[i] == '\r' || tmp[i] == '\n' || !tmp[i] || *len == QQ_ERRTEXT_MAX) { cut = 1; break; }
      out[(*len)++] = tmp[i];
    }
  }
}

/* waitfor - the child's exit before the deadline (it may close fd 6 and go on living):
 * 1 exited, 0 deadline passed, -1 wait error */
static int waitfor(int pid, int *wstat, long long until)
{
  long step = 20000;  /* ns: the child is usually gone microseconds after closing fd 6 */
  for (;;) {
    struct timespec ts;
    int r = waitpid(pid, wstat, WNOHANG);
    if (r == pid) return 1;
    if (r == -1 && errno != EINTR) return -1;
    if (now_ms() >= until) return 0;
    ts.tv_sec = 0;
    ts.tv_nsec = step;
    nanosleep(&ts, 0);
    if (step < 50000000) step *= 2;
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
  exited = readerr(q->fdc, custom, &clen, until);
  if (exited) exited = waitfor(q->pid, &wstat, until);
  close(q->fdc);
  lastwait = -1;
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
