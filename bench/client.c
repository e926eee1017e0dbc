/* bench/client - drives SMTP sessions one after another against 127.0.0.1:PORT, the way a
 * plain (non-pipelining) client does: connect, read the 220, EHLO, MAIL, RCPT, DATA, the
 * message, QUIT, each waiting for its reply, then close. Mode "banner" only reads the 220
 * line and closes (the floor: bench/banner under the same tcpserver). Stops after N
 * sessions or SECONDS, whichever comes first, and prints
 *   sessions=N seconds=S per_s=R
 * on stdout, then greet_p50_us=L: the median time from connect() to the whole 220 line. Any
 * unexpected reply, short read or socket error ends the run with exit 1 and
 * the reason on stderr: a benchmark that counts failed sessions as fast ones is worthless.
 * usage: client PORT N SECONDS banner|full [MESSAGEFILE]
 * MESSAGEFILE holds the DATA payload exactly as sent, dot-stuffed, ending in CRLF . CRLF. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>

static char rbuf[8192];
static size_t rlen;
static int session;

static void fail(const char *what, const char *detail)
{
  fprintf(stderr, "client: session %d: %s%s%s\n", session + 1, what, detail ? ": " : "",
          detail ? detail : "");
  exit(1);
}

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sendall(int fd, const char *s, size_t len)
{
  while (len) {
    ssize_t w = write(fd, s, len);
    if (w == -1 && errno == EINTR) continue;
    if (w <= 0) fail("write", strerror(errno));
    s += w;
    len -= (size_t)w;
  }
}

/* reply - reads one whole (possibly multi-line) reply; fails unless its code is want */
static void reply(int fd, const char *want)
{
  size_t start = 0;
  rlen = 0;
  for (;;) {
    char *nl;
    while ((nl = memchr(rbuf + start, '\n', rlen - start))) {
      size_t linelen = (size_t)(nl - (rbuf + start)) + 1;
      if (linelen < 5 || memcmp(rbuf + start, want, 3)) {
        rbuf[rlen < sizeof rbuf ? rlen : sizeof rbuf - 1] = 0;
        fail("unexpected reply", rbuf);
      }
      if (rbuf[start + 3] == ' ') {
        if (nl + 1 != rbuf + rlen) fail("data after the reply", 0);
        return;
      }
      start += linelen;
    }
    if (rlen == sizeof rbuf) fail("reply too long", 0);
    {
      ssize_t r = read(fd, rbuf + rlen, sizeof rbuf - rlen);
      if (r == -1 && errno == EINTR) continue;
      if (r < 0) fail("read", strerror(errno));
      if (r == 0) fail("eof before the reply", want);
      rlen += (size_t)r;
    }
  }
}

static int cmp(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void expect_eof(int fd)
{
  char c;
  ssize_t r;
  while ((r = read(fd, &c, 1)) == -1 && errno == EINTR) ;
  if (r != 0) fail("no eof after the last reply", 0);
}

int main(int argc, char **argv)
{
  struct sockaddr_in sa;
  struct timeval tv = {10, 0};
  char *msg = 0;
  size_t msglen = 0;
  int port, n, full;
  double seconds, t0, t, *greet;
  if (argc < 5) { fprintf(stderr, "usage: client PORT N SECONDS banner|full [MESSAGEFILE]\n"); return 100; }
  port = atoi(argv[1]);
  n = atoi(argv[2]);
  seconds = atof(argv[3]);
  full = !strcmp(argv[4], "full");
  if (full) {
    struct stat st;
    int fd = argc > 5 ? open(argv[5], O_RDONLY) : -1;
    if (fd == -1 || fstat(fd, &st) == -1) fail("message file", strerror(errno));
    msglen = (size_t)st.st_size;
    if (!(msg = malloc(msglen)) || read(fd, msg, msglen) != (ssize_t)msglen) fail("message file", "short read");
    close(fd);
  }
  if (n < 1 || !(greet = malloc(sizeof *greet * (size_t)n))) fail("sessions", "N must be >= 1");
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  t0 = now();
  for (session = 0; session < n; ++session) {
    int one = 1;
    double tc;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd == -1) fail("socket", strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    tc = now();
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == -1) fail("connect", strerror(errno));
    reply(fd, "220");
    greet[session] = now() - tc;
    if (full) {
      static const char ehlo[] = "EHLO client.bench.test\r\n", mail[] = "MAIL FROM:<sender@client.bench.test>\r\n",
                        rcpt[] = "RCPT TO:<user@bench.test>\r\n", data[] = "DATA\r\n", quit[] = "QUIT\r\n";
      sendall(fd, ehlo, sizeof ehlo - 1); reply(fd, "250");
      sendall(fd, mail, sizeof mail - 1); reply(fd, "250");
      sendall(fd, rcpt, sizeof rcpt - 1); reply(fd, "250");
      sendall(fd, data, sizeof data - 1); reply(fd, "354");
      sendall(fd, msg, msglen); reply(fd, "250");
      sendall(fd, quit, sizeof quit - 1); reply(fd, "221");
      expect_eof(fd);
    }
    close(fd);
    if (now() - t0 > seconds) { ++session; break; }
  }
  t = now() - t0;
  qsort(greet, (size_t)session, sizeof *greet, cmp);
  printf("sessions=%d seconds=%.3f per_s=%.1f greet_p50_us=%.0f\n", session, t, session / t,
         greet[session / 2] * 1e6);
  return 0;
}
