/* bench/flood - many short connections at once against 127.0.0.1:PORT, the way a botnet
 * meets a mail server: connect, read the first reply line, and either drop the connection
 * ("drop") or send QUIT and read one more line ("quit"). PARALLEL connections are kept in
 * flight; each new one binds its own source address out of NADDR addresses 127.1.x.y (so
 * every connection looks like another client, and per-IP limits and DNS lookups see many
 * clients), round robin. Stops after SECONDS and prints
 *   connections=N seconds=S per_s=R matched=M other=O failed=F p50_us=L p99_us=L
 * matched: the first line began with EXPECT (e.g. 554); other: it began with anything else;
 * failed: refused, reset or closed before a whole line. L: connect() to the whole first line.
 * usage: flood PORT SECONDS PARALLEL NADDR EXPECT drop|quit
 * Exit 1 on set-up errors only; the counts say how the connections ended. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

struct slot {
  int fd;
  int quitting;
  size_t len;
  double t0;
  char buf[512];
};

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmpd(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int port, naddr, quit;
static unsigned next_addr;
static int ep;
static double *lat;
static size_t nlat, alat;

static int open_one(struct slot *s)
{
  struct sockaddr_in src, dst;
  struct epoll_event ev;
  struct linger lg = {1, 0};
  unsigned k = next_addr++ % (unsigned)naddr;
  int one = 1;
  s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s->fd == -1) return -1;
  setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);  /* no TIME_WAIT pile-up here */
  memset(&src, 0, sizeof src);
  src.sin_family = AF_INET;
  src.sin_addr.s_addr = htonl(0x7f010000u | (1 + k));
  if (bind(s->fd, (struct sockaddr *)&src, sizeof src) == -1) {
    close(s->fd);
    return -1;
  }
  memset(&dst, 0, sizeof dst);
  dst.sin_family = AF_INET;
  dst.sin_port = htons((unsigned short)port);
  dst.sin_addr.s_addr = htonl(0x7f000001u);
  s->t0 = now();
  s->len = 0;
  s->quitting = 0;
  if (connect(s->fd, (struct sockaddr *)&dst, sizeof dst) == -1 && errno != EINPROGRESS) {
    close(s->fd);
    return -1;
  }
  ev.events = EPOLLIN;
  ev.data.ptr = s;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) == -1) {
    close(s->fd);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv)
{
  int seconds, parallel, i;
  const char *expect;
  struct slot *slots;
  struct epoll_event evs[256];
  unsigned long conns = 0, matched = 0, other = 0, failed = 0;
  double start, end;
  struct rlimit rl;
  if (argc != 7) {
    fprintf(stderr, "usage: flood PORT SECONDS PARALLEL NADDR EXPECT drop|quit\n");
    return 1;
  }
  port = atoi(argv[1]);
  seconds = atoi(argv[2]);
  parallel = atoi(argv[3]);
  naddr = atoi(argv[4]);
  expect = argv[5];
  quit = !strcmp(argv[6], "quit");
  if (port <= 0 || seconds <= 0 || parallel <= 0 || naddr <= 0 || naddr > 65000) return 1;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)parallel + 64) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  ep = epoll_create1(EPOLL_CLOEXEC);
  slots = calloc((size_t)parallel, sizeof *slots);
  if (ep == -1 || !slots) return 1;
  start = now();
  end = start + seconds;
  for (i = 0; i < parallel; ++i)
    if (open_one(&slots[i]) == -1) {
      perror("flood: connect");
      return 1;
    }
  for (;;) {
    double t = now();
    int n, timeout;
    if (t >= end) break;
    timeout = (int)((end - t) * 1000) + 1;
    n = epoll_wait(ep, evs, 256, timeout);
    if (n == -1 && errno != EINTR) return 1;
    for (i = 0; i < n; ++i) {
      struct slot *s = evs[i].data.ptr;
      ssize_t r = read(s->fd, s->buf + s->len, sizeof s->buf - 1 - s->len);
      int done = 0;
      if (r <= 0) {
        if (r == -1 && errno == EAGAIN) continue;
        if (!s->quitting) ++failed;
        done = 1;
      } else {
        char *nl;
        s->len += (size_t)r;
        s->buf[s->len] = 0;
        if ((nl = strchr(s->buf, '\n'))) {
          if (!s->quitting) {
            double d = now() - s->t0;
            if (nlat == alat) {
              alat = alat ? 2 * alat : 65536;
              lat = realloc(lat, alat * sizeof *lat);
              if (!lat) return 1;
            }
            lat[nlat++] = d;
            if (!strncmp(s->buf, expect, strlen(expect))) ++matched; else ++other;
            if (quit) {
              s->quitting = 1;
              s->len = 0;
              if (write(s->fd, "QUIT\r\n", 6) != 6) done = 1;
            } else {
              done = 1;
            }
          } else {
            done = 1;
          }
        } else if (s->len >= sizeof s->buf - 1) {
          ++failed;
          done = 1;
        }
      }
      if (done) {
        close(s->fd);
        ++conns;
        if (open_one(s) == -1) {
          perror("flood: connect");
          return 1;
        }
      }
    }
  }
  end = now() - start;
  if (nlat) qsort(lat, nlat, sizeof *lat, cmpd);
  printf("connections=%lu seconds=%.3f per_s=%.1f matched=%lu other=%lu failed=%lu p50_us=%.0f "
         "p99_us=%.0f\n", conns, end, (double)conns / end, matched, other, failed,
         nlat ? lat[nlat / 2] * 1e6 : 0.0, nlat ? lat[nlat * 99 / 100] * 1e6 : 0.0);
  return 0;
}
