/* proc.c - waiting for a child (qmail-queue, checkpassword) within a deadline and without a
 * sleep loop. On Linux >= 5.3 the child's pidfd becomes readable when it exits, so the wait is
 * one poll() with the remaining time (queue.c polls it together with the fd 6 pipe). Without
 * pidfd_open (older kernels, ENOSYS), waitpid() blocks and a repeating ITIMER_REAL, armed
 * only for the wait with a SIGALRM handler that does nothing (no SA_RESTART), interrupts it
 * so that the deadline is checked; the old handler and timer are restored after. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include "proc.h"

long long proc_now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int proc_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
  return (int)syscall(SYS_pidfd_open, pid, 0);  /* close-on-exec by definition */
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

int proc_reaped(pid_t pid, int *wstat)
{
  for (;;) {
    pid_t r = waitpid(pid, wstat, WNOHANG);
    if (r == pid) return 1;
    if (r == 0) return 0;
    if (errno != EINTR) return -1;
  }
}

static void ring(int sig) { (void)sig; }

/* timedwait - the fallback without a pidfd */
static int timedwait(pid_t pid, int *wstat, long long until)
{
  struct sigaction sa, old;
  struct itimerval it, oldit;
  long long left = until - proc_now_ms();
  int r = 0;
  if (left <= 0) return proc_reaped(pid, wstat);
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = ring;  /* no SA_RESTART: waitpid returns EINTR */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, &old);
  /* first expiry at the deadline (or sooner), then every 100 ms: a signal that lands between
   * the check and the waitpid() cannot leave us blocked past the deadline by more than that */
  it.it_value.tv_sec = (time_t)(left / 1000);
  it.it_value.tv_usec = (suseconds_t)(left % 1000 * 1000);
  it.it_interval.tv_sec = 0;
  it.it_interval.tv_usec = 100000;
  setitimer(ITIMER_REAL, &it, &oldit);
  for (;;) {
    pid_t w = waitpid(pid, wstat, 0);
    if (w == pid) { r = 1; break; }
    if (w == -1 && errno != EINTR) { r = -1; break; }
    if (proc_now_ms() >= until) { r = proc_reaped(pid, wstat); break; }
  }
  setitimer(ITIMER_REAL, &oldit, 0);
  sigaction(SIGALRM, &old, 0);
  return r;
}

int proc_wait(pid_t pid, int pidfd, int *wstat, long long until)
{
  if (pidfd < 0) return timedwait(pid, wstat, until);
  for (;;) {
    struct pollfd p;
    long long left;
    int r = proc_reaped(pid, wstat);
    if (r) return r;
    left = until - proc_now_ms();
    if (left <= 0) return 0;
    p.fd = pidfd; p.events = POLLIN; p.revents = 0;
    if (poll(&p, 1, left > 86400000 ? 86400000 : (int)left) == -1 && errno != EINTR) return -1;
  }
}
