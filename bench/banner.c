/* bench/banner - the floor for a session's start-up: what tcpserver (or the shell) pays to
 * start a minimal dynamically linked C program that writes one 220 line and exits. The
 * benchmarks run it where mxguard-smtpd would run, so the difference between the two is what
 * mxguard itself costs. No stdio, no environment, no files: one write and _exit. */
#include <unistd.h>

int main(void)
{
  static const char msg[] = "220 bench.test ESMTP\r\n";
  (void)!write(1, msg, sizeof msg - 1);
  _exit(0);
}
