/* bench/peakrss - runs argv[1..] under ptrace and, as each process of the tree (the program
 * and every child it forks, e.g. its qmail-queue) exits, prints its own peak resident set
 * ("peakrss pid=N comm=NAME kb=VmHWM") on fd 2; last "peakrss status=S" for the program.
 * VmHWM belongs to the process's memory map after its exec, so unlike ru_maxrss (what GNU
 * time -f %M reports) it includes neither the forking parent's pages, which Linux carries
 * into ru_maxrss across exec, nor the children's. Stops only at fork, exec and exit. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

static void report(pid_t pid)
{
  char fn[64], buf[4096], comm[64] = "?";
  ssize_t n;
  int fd;
  const char *hwm;
  snprintf(fn, sizeof fn, "/proc/%d/comm", (int)pid);
  if ((fd = open(fn, O_RDONLY)) != -1) {
    n = read(fd, comm, sizeof comm - 1);
    comm[n > 0 ? n : 0] = 0;
    comm[strcspn(comm, "\n")] = 0;
    close(fd);
  }
  snprintf(fn, sizeof fn, "/proc/%d/status", (int)pid);
  if ((fd = open(fn, O_RDONLY)) == -1) return;
  n = read(fd, buf, sizeof buf - 1);
  close(fd);
  buf[n > 0 ? n : 0] = 0;
  hwm = strstr(buf, "VmHWM:");
  if (!hwm) return;
  hwm += 6;
  while (*hwm == ' ' || *hwm == '\t') ++hwm;
  fprintf(stderr, "peakrss pid=%d comm=%s kb=%ld\n", (int)pid, comm, strtol(hwm, 0, 10));
}

int main(int argc, char **argv)
{
  pid_t pid, w;
  int st, status = 111;
  if (argc < 2) return 100;
  pid = fork();
  if (pid == -1) return 111;
  if (!pid) {
    ptrace(PTRACE_TRACEME, 0, 0, 0);
    raise(SIGSTOP);
    execv(argv[1], argv + 1);
    _exit(127);
  }
  if (waitpid(pid, &st, 0) != pid || !WIFSTOPPED(st)) return 111;
  ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_TRACEEXIT | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK |
         PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL);
  ptrace(PTRACE_CONT, pid, 0, 0);
  while ((w = waitpid(-1, &st, __WALL)) != -1) {
    int sig = 0;
    if (WIFEXITED(st) || WIFSIGNALED(st)) {
      if (w == pid) status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      continue;
    }
    if (!WIFSTOPPED(st)) continue;
    if (st >> 16 == PTRACE_EVENT_EXIT) report(w);
    else if (st >> 16 == 0 && WSTOPSIG(st) != SIGSTOP && WSTOPSIG(st) != SIGTRAP) sig = WSTOPSIG(st);
    ptrace(PTRACE_CONT, w, 0, sig);
  }
  fprintf(stderr, "peakrss status=%d\n", status);
  return 0;
}
