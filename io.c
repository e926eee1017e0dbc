/* io.c - everything that waits on the client. Reads come through netread(), the op of the
 * libowfat buffer on fd 0: it flushes pending output first (that is what makes PIPELINING
 * work, as qmail's saferead does), then poll()s the client together with the descriptors
 * that other modules registered (DNS sockets), so their answers are processed while the
 * client talks. Every read and write has a deadline (control/timeoutsmtpd); a timeout is
 * reported to the caller, a failed write ends the process through io_die. Command lines are
 * bounded: a line over the limit is discarded up to its LF and reported as IO_LONG.
 * Deadlines are total, not restarted by each byte: a command line must be complete within the
 * timeout (io_getline), a caller may cap a whole exchange (io_deadline: AUTH), and DATA must
 * keep a minimum average rate after a grace period (io_rate). A client dripping one byte at a
 * time therefore cannot hold a tcpserver slot (or a qmail-queue process) for ever. */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>
#include "io.h"

static ssize_t netread(int fd, char *buf, size_t len);
static ssize_t netwrite(int fd, const char *buf, size_t len);

static char inbuf[IO_INSIZE];
static char outbuf[IO_OUTSIZE];
buffer io_in = BUFFER_INIT(netread, 0, inbuf, sizeof inbuf);
buffer io_out = BUFFER_INIT(netwrite, 1, outbuf, sizeof outbuf);
void (*io_die)(int why);

static long timeout_ms = 1200000;
static long long cap_at;                 /* io_deadline: absolute ms, 0 none */
static long long rate_from;              /* io_rate: DATA started here (ms), 0 off */
static unsigned long long rate_bytes;    /* bytes read since then */
static unsigned long rate_min;           /* bytes per second */
static long rate_grace_ms;
static int expired = IO_EXP_IDLE;        /* which deadline ran out last */
static long long life_at;              /* io_setlifetime: end of the session, 0 none */
static void (*life_fn)(void);
static int writing;                    /* inside netwrite: no reply can be written now */
static unsigned long thr_bps;          /* io_setrate: inbound bytes per second, 0 none */
static long long thr_t0;
static unsigned long long thr_bytes;
static const struct io_watch *watches[IO_WATCH_MAX];
static const struct io_tls *tls;

void io_init(int fdin, int fdout)
{
  io_in.fd = fdin;
  io_out.fd = fdout;
}

void io_settimeout(unsigned long seconds)
{
  timeout_ms = seconds > 86400UL * 365 ? 86400L * 365 * 1000 : (long)seconds * 1000;
}

long long io_now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int io_watch_add(const struct io_watch *w)
{
  int i;
  for (i = 0; i < IO_WATCH_MAX; ++i)
    if (!watches[i]) { watches[i] = w; return 0; }
  return -1;
}

void io_watch_del(const struct io_watch *w)
{
  int i;
  for (i = 0; i < IO_WATCH_MAX; ++i)
    if (watches[i] == w) watches[i] = 0;
}

void io_settls(const struct io_tls *t) { tls = t; }

long long io_deadline(long long at)
{
  long long old = cap_at;
  cap_at = at;
  return old;
}

void io_rate(unsigned long grace_s, unsigned long min_bps)
{
  rate_from = min_bps ? io_now_ms() : 0;
  rate_bytes = 0;
  rate_min = min_bps;
  rate_grace_ms = grace_s > 86400UL ? 86400000L : (long)grace_s * 1000;
}

int io_expired(void) { return expired; }

/* bound - the per-call deadline cut to the total ones; notes which one binds */
static long long bound(long long deadline, int *kind)
{
  *kind = IO_EXP_IDLE;
  if (cap_at && cap_at < deadline) { deadline = cap_at; *kind = IO_EXP_TOTAL; }
  if (rate_from) {
    unsigned long long need = rate_bytes * 1000 / rate_min;  /* ms the bytes so far buy */
    long long at = rate_from + rate_grace_ms +
                   (need > 86400000ULL * 365 ? 86400000LL * 365 : (long long)need);
    if (at < deadline) { deadline = at; *kind = IO_EXP_RATE; }
  }
  return deadline;
}

void io_setlifetime(long long at_ms, void (*fn)(void)) { life_at = at_ms; life_fn = fn; }
void io_setrate(unsigned long bytes_per_s) { thr_bps = bytes_per_s; }

/* waitfor - poll fd for events (if fd >= 0) and serve the watches until deadline.
 * 1: fd ready; 0: deadline passed */
static int waitfor(int fd, short events, long long deadline)
{
  struct pollfd p[IO_POLL_MAX];
  int idx[IO_WATCH_MAX + 1], i, n;
  for (;;) {
    long long now = io_now_ms();
    long wait;
    if (life_at && now >= life_at) {  /* session lifetime over: the callback does not return */
      life_at = 0;
      if (writing) io_die(IO_DIE_WRITE);  /* a client that does not read gets no 421 */
      life_fn();
    }
    if (now >= deadline) return 0;
    wait = deadline - now > 86400000 ? 86400000 : (long)(deadline - now);
    if (life_at && life_at - now < wait) wait = (long)(life_at - now);
    n = 0;
    if (fd >= 0) { p[0].fd = fd; p[0].events = events; p[0].revents = 0; n = 1; }
    for (i = 0; i < IO_WATCH_MAX; ++i) {
      idx[i] = n;
      if (!watches[i]) continue;
      n += watches[i]->fill(p + n, IO_POLL_MAX - n, watches[i]->ctx);
      if (watches[i]->timeout_ms) {
        long t = watches[i]->timeout_ms(watches[i]->ctx);
        if (t >= 0 && t < wait) wait = t;
      }
    }
    idx[IO_WATCH_MAX] = n;
    if (poll(p, n, wait) == -1) {
      if (errno == EINTR) continue;
      return 1;  /* let the read or write report the error */
    }
    for (i = 0; i < IO_WATCH_MAX; ++i)
      if (watches[i]) watches[i]->ready(p + idx[i], idx[i + 1] - idx[i], watches[i]->ctx);
    if (fd >= 0 && p[0].revents) return 1;
  }
}

/* netread - with TLS, read first: OpenSSL may hold decrypted bytes (SSL_pending) that no
 * poll() on the socket would ever announce */
/* throttle - after n bytes read, wait until the rate allows them; at most 1 s of idle time
 * is kept as credit */
static void throttle(size_t n)
{
  long long now = io_now_ms(), due;
  if (!thr_t0 || thr_t0 + (long long)(thr_bytes * 1000 / thr_bps) < now - 1000) {
    thr_t0 = now - 1000;
    thr_bytes = 0;
  }
  thr_bytes += n;
  due = thr_t0 + (long long)(thr_bytes * 1000 / thr_bps);
  if (due > now) waitfor(-1, 0, due);
}

static ssize_t netread(int fd, char *buf, size_t len)
{
  long long deadline;
  short ev = POLLIN;
  int first = tls != 0, kind;
  if (buffer_flush(&io_out) == -1) return -1;
  if (thr_bps && len > thr_bps / 10 + 64) len = thr_bps / 10 + 64;  /* smooth sleeps */
  deadline = bound(io_now_ms() + timeout_ms, &kind);
  for (;;) {
    ssize_t r;
    int want = 0;
    if (!first && !waitfor(fd, ev, deadline)) { expired = kind; errno = ETIMEDOUT; return -1; }
    first = 0;
    if (tls) r = tls->read(tls->ctx, buf, len, &want);
    else r = read(fd, buf, len);
    if (r > 0 && rate_from) rate_bytes += (unsigned long long)r;
    if (r > 0 && thr_bps) throttle((size_t)r);
    if (r >= 0) return r;
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
    ev = want == POLLOUT ? POLLOUT : POLLIN;
    if (tls && ev == POLLOUT) fd = io_out.fd;
  }
}

static ssize_t netwrite(int fd, const char *buf, size_t len)
{
  int kind;
  long long deadline = bound(io_now_ms() + timeout_ms, &kind);
  short ev = POLLOUT;
  for (;;) {
    ssize_t w;
    int want = 0, ready;
    writing = 1;
    ready = waitfor(fd, ev, deadline);
    writing = 0;
    if (!ready) break;
    if (tls) w = tls->write(tls->ctx, buf, len, &want);
    else w = write(fd, buf, len);
    if (w > 0) return w;
    if (w == -1 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) break;
    ev = want == POLLIN ? POLLIN : POLLOUT;
    if (tls) fd = ev == POLLIN ? io_in.fd : io_out.fd;
  }
  io_die(IO_DIE_WRITE);
  return -1;
}

int io_handshake(int (*step)(void *ctx, int *want), void *ctx)
{
  int kind;
  long long deadline = bound(io_now_ms() + timeout_ms, &kind);  /* the whole handshake */
  for (;;) {
    int want = POLLIN, r = step(ctx, &want);
    if (r) return r;
    if (!waitfor(want == POLLOUT ? io_out.fd : io_in.fd, want == POLLOUT ? POLLOUT : POLLIN,
                 deadline)) {
      expired = kind;
      return 0;
    }
  }
}

void io_forget(void)
{
  memset(io_in.x, 0, io_in.p);
}

ssize_t io_fill(void)
{
  ssize_t n = buffer_feed(&io_in);
  if (n > 0) return n;
  if (n == 0) return IO_EOF;
  return errno == ETIMEDOUT ? IO_TIMEOUT : IO_ERROR;
}

size_t io_buffered(void) { return io_in.n - io_in.p; }

void io_discard_input(void) { io_in.p = io_in.n = 0; }

/* the line must be complete within the timeout as a whole (or by the caller's cap, if sooner);
 * a client silent throughout is an ordinary idle timeout */
int io_getline(char *line, size_t size, size_t *len)
{
  size_t have = 0;
  int toolong = 0, some = 0;
  long long saved = cap_at, at = io_now_ms() + timeout_ms;
  if (!cap_at || at < cap_at) cap_at = at;
  for (;;) {
    ssize_t n = io_fill();
    char *p, *nl;
    size_t take;
    if (n <= 0) {
      if (n == IO_TIMEOUT && expired == IO_EXP_TOTAL && !some && !saved) expired = IO_EXP_IDLE;
      cap_at = saved;
      return (int)n;
    }
    some = 1;
    p = buffer_peek(&io_in);
    nl = memchr(p, '\n', (size_t)n);
    take = nl ? (size_t)(nl - p) : (size_t)n;
    if (!toolong) {
      if (take > size - 1 - have) toolong = 1;
      else { memcpy(line + have, p, take); have += take; }
    }
    buffer_seek(&io_in, nl ? take + 1 : take);
    if (nl) break;
  }
  cap_at = saved;
  if (toolong) return IO_LONG;
  if (have && line[have - 1] == '\r') --have;
  line[have] = 0;
  *len = have;
  return IO_LINE;
}

int io_wait(long ms, int watch_client)
{
  long long deadline = io_now_ms() + ms;
  if (watch_client && io_buffered()) return 1;
  buffer_flush(&io_out);
  return waitfor(watch_client ? io_in.fd : -1, POLLIN, deadline);
}

/* io_waitfd - wait for events on another module's fd (clamd, spamd) up to ms, serving the
 * watches meanwhile: 1 ready, 0 the time is up */
int io_waitfd(int fd, short events, long ms)
{
  buffer_flush(&io_out);
  return waitfor(fd, events, io_now_ms() + ms);
}
