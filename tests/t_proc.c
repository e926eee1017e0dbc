/* t_proc - proc.c: a child's exit awaited on its pidfd and, as on kernels without
 * pidfd_open, by the timer-interrupted blocking waitpid; exit status, death by a signal, the
 * deadline (the child is left running and the wait returns within it), and that the
 * fallback leaves SIGALRM's disposition and the interval timer as it found them. */
#include <signal.h>
#include <time.h>
#include <sys/time.h>
#include <sys/wait.h>
#include "proc.h"
#include "check.h"

static pid_t start(int exitcode, int sleep_ms, int sig)
{
  pid_t pid = fork();
  if (!pid) {
    struct timespec ts;
    ts.tv_sec = sleep_ms / 1000;
    ts.tv_nsec = (long)(sleep_ms % 1000) * 1000000;
    nanosleep(&ts, 0);
    if (sig) kill(getpid(), sig);
    _exit(exitcode);
  }
  return pid;
}

static void one(const char *how, int usepidfd)
{
  char name[128];
  int st = 0, r, fd;
  long long t0, dt;
  pid_t pid;

  pid = start(7, 50, 0);
  fd = usepidfd ? proc_pidfd(pid) : -1;
  if (usepidfd) check(fd >= 0, "pidfd_open", "errno %d", errno);
  r = proc_wait(pid, fd, &st, proc_now_ms() + 5000);
  snprintf(name, sizeof name, "%s exit status", how);
  check(r == 1 && WIFEXITED(st) && WEXITSTATUS(st) == 7, name, "r=%d st=%#x", r, st);
  if (fd >= 0) close(fd);

  pid = start(0, 20, SIGKILL);
  fd = usepidfd ? proc_pidfd(pid) : -1;
  r = proc_wait(pid, fd, &st, proc_now_ms() + 5000);
  snprintf(name, sizeof name, "%s killed by a signal", how);
  check(r == 1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, name, "r=%d st=%#x", r, st);
  if (fd >= 0) close(fd);

  pid = start(0, 0, 0);  /* already a zombie when we open the pidfd and wait */
  { struct timespec z = {0, 50000000}; nanosleep(&z, 0); }
  fd = usepidfd ? proc_pidfd(pid) : -1;
  r = proc_wait(pid, fd, &st, proc_now_ms() + 5000);
  snprintf(name, sizeof name, "%s zombie", how);
  check(r == 1 && WIFEXITED(st) && !WEXITSTATUS(st), name, "r=%d st=%#x fd=%d", r, st, fd);
  if (fd >= 0) close(fd);

  pid = start(0, 10000, 0);
  fd = usepidfd ? proc_pidfd(pid) : -1;
  t0 = proc_now_ms();
  r = proc_wait(pid, fd, &st, t0 + 300);
  dt = proc_now_ms() - t0;
  snprintf(name, sizeof name, "%s deadline", how);
  check(r == 0 && dt >= 290 && dt < 1000, name, "r=%d after %lld ms (deadline 300)", r, dt);
  snprintf(name, sizeof name, "%s child left running", how);
  check(kill(pid, 0) == 0, name, "errno %d", errno);
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
  if (fd >= 0) close(fd);
}

int main(void)
{
  struct sigaction sa;
  struct itimerval it;
  one("pidfd", 1);
  one("fallback", 0);
  sigaction(SIGALRM, 0, &sa);
  check(sa.sa_handler == SIG_DFL, "fallback restores SIGALRM", "handler changed");
  getitimer(ITIMER_REAL, &it);
  check(!it.it_value.tv_sec && !it.it_value.tv_usec, "fallback disarms its timer", "armed");
  return check_done();
}
