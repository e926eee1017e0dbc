/* bench/spawnloop N PROG [any] - start PROG N times one after another (vfork+exec, stdout to
 * /dev/null, wait) and print the wall time and the children's user and system CPU per start
 * in microseconds, and the children's minor page faults per start: what one exec of PROG
 * costs, start-up and exit included. A child that
 * fails stops the loop, unless "any" is given (mxguard-smtpd on an empty stdin exits 1). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/wait.h>

int main(int argc, char **argv)
{
  struct timespec t0, t1;
  struct rusage ru;
  long n, i;
  int null = open("/dev/null", O_WRONLY);
  char *args[2];
  int any = argc == 4 && argv[3][0] == 'a';
  if (argc < 3 || argc > 4 || null == -1) return 100;
  n = atol(argv[1]);
  args[0] = argv[2];
  args[1] = 0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (i = 0; i < n; ++i) {
    int st;
    pid_t pid = vfork();
    if (pid == -1) return 111;
    if (!pid) {
      dup2(null, 1);
      execv(args[0], args);
      _exit(127);
    }
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || (WEXITSTATUS(st) && !any)) return 111;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  getrusage(RUSAGE_CHILDREN, &ru);
  printf("spawnloop n=%ld wall_us=%.2f user_us=%.2f sys_us=%.2f minflt=%.1f\n", n,
         ((t1.tv_sec - t0.tv_sec) * 1e6 + (t1.tv_nsec - t0.tv_nsec) / 1e3) / n,
         (ru.ru_utime.tv_sec * 1e6 + ru.ru_utime.tv_usec) / n,
         (ru.ru_stime.tv_sec * 1e6 + ru.ru_stime.tv_usec) / n, (double)ru.ru_minflt / n);
  return 0;
}
