/* bench/banner-nolibc - bench/banner without any libc: the kernel's exec and exit alone (x86-64
 * Linux system calls, static, no start files). bench/run's part (f) and bench/startup set
 * glibc's and musl's static start-up against it; built with -DCPUID=N it first executes
 * CPUID N times, with -DCPUID_LEAVES=eax,ecx,... the CPUID leaves given (what glibc's start-up
 * does to learn the CPU and its caches), with -DTOUCH=N it writes N fresh pages first. */
static long sys3(long n, long a, long b, long c)
{
  long r;
  __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
  return r;
}

#ifdef TOUCH  /* bench/startup: what a fresh page costs here (written once, a minor fault) */
static char pages[TOUCH * 4096];
#endif

void _start(void)
{
  static const char msg[] = "220 bench.test ESMTP\r\n";
#ifdef CPUID  /* bench/startup: what CPUID executions cost here (on a VM each one traps) */
  unsigned a, b, c, d, i;
  for (i = 0; i < CPUID; ++i) {
    a = i & 1 ? 4 : 0; c = 0;
    __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
  }
#endif
#ifdef TOUCH
  unsigned pi;
  for (pi = 0; pi < TOUCH; ++pi) ((volatile char *)pages)[pi * 4096] = 1;
#endif
#ifdef CPUID_LEAVES  /* the same for a given list of leaf,subleaf pairs (glibc's, as traced) */
  static const unsigned lv[] = {CPUID_LEAVES};
  unsigned la, lb, lc, ld, li;
  for (li = 0; li + 1 < sizeof lv / sizeof lv[0]; li += 2) {
    la = lv[li]; lc = lv[li + 1];
    __asm__ volatile("cpuid" : "+a"(la), "=b"(lb), "+c"(lc), "=d"(ld));
  }
#endif
  sys3(1, 1, (long)msg, sizeof msg - 1);  /* write */
  sys3(231, 0, 0, 0);                     /* exit_group */
  for (;;) {}
}
