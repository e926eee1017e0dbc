/* bench/smtp-floor - the least an SMTP server of qmail's process model can do per session,
 * as the floor for whole-session benchmarks: started per connection (by tcpserver) with the
 * client on fd 0/1, it answers 220, then 250 to every command, 354 to DATA, 221 to QUIT (and
 * exits); between 354 and the CR LF . CR LF it passes the client's bytes unchanged to
 * $QMAILQUEUE (forked and exec'd as qmail-queue is: message on fd 0, a fixed envelope on
 * fd 1) and answers 250 after it exits 0, 451 otherwise. Without QMAILQUEUE the message is
 * discarded. No parsing, no checks, no control files, no log, no stdio. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

static char in[16384];
static size_t pos, len;

static void put(int fd, const char *s, size_t n)
{
  while (n) {
    ssize_t w = write(fd, s, n);
    if (w <= 0) _exit(1);
    s += w;
    n -= (size_t)w;
  }
}
static void say(const char *s) { put(1, s, strlen(s)); }

static int fill(void)
{
  ssize_t r = read(0, in, sizeof in);
  if (r <= 0) _exit(1);
  pos = 0;
  len = (size_t)r;
  return 1;
}

/* data - copies the message to fd until CR LF . CR LF (fd -1: discards it) */
static void data(int fd)
{
  static const char end[] = "\r\n.\r\n";
  int st = 2;  /* bytes of end[] matched; DATA's own CR LF counts */
  for (;;) {
    size_t start;
    if (pos == len) fill();
    start = pos;
    while (pos < len) {
      char c = in[pos++];
      st = c == end[st] ? st + 1 : c == '\r' ? 1 : 0;
      if (st == 5) {
        if (fd != -1 && pos - start > 3) put(fd, in + start, pos - start - 3);
        return;
      }
    }
    if (fd != -1) put(fd, in + start, pos - start);
  }
}

static void queue(void)
{
  static const char env[] = "Fsender@client.bench.test\0Tuser@bench.test\0";
  const char *qq = getenv("QMAILQUEUE");
  int pm[2], pe[2], wstat;
  pid_t pid;
  if (!qq) { say("354 go ahead\r\n"); data(-1); say("250 ok\r\n"); return; }
  if (pipe(pm) == -1 || pipe(pe) == -1 || (pid = fork()) == -1) _exit(1);
  if (!pid) {
    char *argv[] = {(char *)qq, 0};
    dup2(pm[0], 0); dup2(pe[0], 1);
    close(pm[0]); close(pm[1]); close(pe[0]); close(pe[1]);
    execv(qq, argv);
    _exit(120);
  }
  close(pm[0]); close(pe[0]);
  say("354 go ahead\r\n");
  data(pm[1]);
  close(pm[1]);
  put(pe[1], env, sizeof env);  /* includes the final NUL */
  close(pe[1]);
  if (waitpid(pid, &wstat, 0) != pid || !WIFEXITED(wstat) || WEXITSTATUS(wstat)) say("451 qq failure\r\n");
  else say("250 ok\r\n");
}

int main(void)
{
  say("220 bench.test ESMTP\r\n");
  for (;;) {
    char c4[4];
    size_t n = 0;
    for (;;) {  /* one command line: its first 4 bytes decide */
      char c;
      if (pos == len) fill();
      c = in[pos++];
      if (c == '\n') break;
      if (n < 4) c4[n++] = (char)(c | 0x20);
    }
    if (n == 4 && !memcmp(c4, "data", 4)) queue();
    else if (n == 4 && !memcmp(c4, "quit", 4)) { say("221 bench.test\r\n"); _exit(0); }
    else if (n == 4 && !memcmp(c4, "ehlo", 4)) say("250-bench.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
    else say("250 ok\r\n");
  }
}
