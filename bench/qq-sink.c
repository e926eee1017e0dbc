/* bench/qq-sink - a minimal qmail-queue for the benchmarks: reads the message on fd 0 to EOF,
 * then the envelope on fd 1 (F sender NUL, T recipient NUL ..., NUL) to its final NUL - the
 * NUL that starts an empty field - and exits 0 without storing anything. Exit 54 (qmail's
 * "qq read error") when either read fails or the envelope ends early, so a broken
 * qmail-queue protocol shows as a refused message, never as a fast success. A C program, not
 * a script: the benchmark counts its start-up too, so it must be as small as banner. */
#include <unistd.h>

static char buf[65536];

int main(void)
{
  ssize_t r;
  int fieldstart = 1;
  for (;;) {
    r = read(0, buf, sizeof buf);
    if (r == 0) break;
    if (r < 0) _exit(54);
  }
  for (;;) {
    ssize_t i;
    r = read(1, buf, sizeof buf);
    if (r <= 0) _exit(54);
    for (i = 0; i < r; ++i) {
      if (!buf[i]) {
        if (fieldstart) _exit(0);
        fieldstart = 1;
      } else
        fieldstart = 0;
    }
  }
}
