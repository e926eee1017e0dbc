/* version.c - the one version string every mxguard program prints with -V / --version.
 * MXG_VERSION comes from the first line of VERSION (see the Makefile). */
#include <string.h>
#include <unistd.h>
#include <stdlib.h>
#include "version.h"

#ifndef MXG_VERSION
#define MXG_VERSION "unknown"
#endif
const char mxguard_version[] = MXG_VERSION;

int version_arg(const char *arg) { return !strcmp(arg, "-V") || !strcmp(arg, "--version"); }

void version_print(const char *prog)
{
  size_t n = strlen(prog), v = strlen(mxguard_version);
  if (write(1, prog, n) != (ssize_t)n || write(1, " ", 1) != 1 ||
      write(1, mxguard_version, v) != (ssize_t)v || write(1, "\n", 1) != 1)
    _exit(111);
  _exit(0);
}
