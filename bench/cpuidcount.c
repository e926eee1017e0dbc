/* bench/cpuidcount PROG - run PROG (stdin, stdout and stderr as given) one instruction at a
 * time under ptrace and print how many steps it took in user space and how many were CPUID
 * (0f a2), the instruction a VM's hypervisor must trap, with the leaf and subleaf (eax, ecx)
 * of each: "cpuidcount steps=N cpuid=N leaves=eax,ecx,...". A step is one instruction, or one
 * round of a rep-prefixed one. x86-64 Linux only; bench/startup uses it to show where glibc's
 * static start-up time goes. Exit status 0, or 111 when PROG cannot be traced. */
#include <errno.h>
#include <string.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>

int main(int argc, char **argv)
{
  long steps = 0, cpuid = 0;
  static char leaves[4096];
  size_t ll = 0;
  int st;
  pid_t pid;
  if (argc < 2) return 100;
  pid = fork();
  if (pid == -1) return 111;
  if (!pid) {
    if (ptrace(PTRACE_TRACEME, 0, 0, 0) == -1) _exit(111);
    execv(argv[1], argv + 1);
    _exit(127);
  }
  if (waitpid(pid, &st, 0) != pid || !WIFSTOPPED(st)) return 111;  /* stopped at the exec */
  for (;;) {
    struct user_regs_struct r;
    long w;
    if (ptrace(PTRACE_GETREGS, pid, 0, &r) == -1) break;
    errno = 0;
    w = ptrace(PTRACE_PEEKTEXT, pid, (void *)r.rip, 0);
    if (errno) break;
    ++steps;
    if ((w & 0xffff) == 0xa20f) {
      ++cpuid;
      if (ll + 24 < sizeof leaves)  /* the subleaf matters for leaves 4, 7, 0xb, 0xd, 0x8000001d */
        ll += (size_t)snprintf(leaves + ll, sizeof leaves - ll, "%s0x%x,0x%x", ll ? "," : "",
                               (unsigned)r.rax, (unsigned)r.rcx);
    }
    if (ptrace(PTRACE_SINGLESTEP, pid, 0, 0) == -1) break;
    if (waitpid(pid, &st, 0) != pid || WIFEXITED(st) || WIFSIGNALED(st)) break;
    if (WIFSTOPPED(st) && WSTOPSIG(st) != SIGTRAP) {  /* pass other signals on */
      if (ptrace(PTRACE_SINGLESTEP, pid, 0, WSTOPSIG(st)) == -1) break;
      if (waitpid(pid, &st, 0) != pid || WIFEXITED(st) || WIFSIGNALED(st)) break;
    }
  }
  if (!WIFEXITED(st) && !WIFSIGNALED(st)) {
    fprintf(stderr, "cpuidcount: tracing stopped early\n");
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return 111;
  }
  printf("cpuidcount steps=%ld cpuid=%ld leaves=%s\n", steps, cpuid, ll ? leaves : "-");
  return 0;
}
