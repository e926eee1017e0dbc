/* bench/banner-nolibc - bench/banner without any libc: the kernel's exec and exit alone (x86-64
 * Linux system calls, static, no start files). bench/run's part (f) sets glibc's and musl's
 * static start-up against it. */
static long sys3(long n, long a, long b, long c)
{
  long r;
  __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
  return r;
}

void _start(void)
{
  static const char msg[] = "220 bench.test ESMTP\r\n";
  sys3(1, 1, (long)msg, sizeof msg - 1);  /* write */
  sys3(231, 0, 0, 0);                     /* exit_group */
  for (;;) {}
}
