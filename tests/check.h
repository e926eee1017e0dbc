/* tests/check.h - a tiny test helper for the unit tests (no libcheck): every case prints one
 * line, "PASS name" or "FAIL name: detail", and check_done() gives the exit status (1 when
 * any case failed). Also: byte strings shown with C escapes, a scratch directory made with
 * mkdtemp (removed at exit) and a file writer for fixtures. Everything is static: each test
 * program includes this once. */
#ifndef CHECK_H
#define CHECK_H
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#define CHECK_FN static __attribute__((unused))

static int check_npass, check_nfail;
static char check_dir[256];

/* check - one case: PASS when ok, else FAIL with the printf-style detail */
CHECK_FN int check(int ok, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
CHECK_FN int check(int ok, const char *name, const char *fmt, ...)
{
  va_list ap;
  if (ok) {
    ++check_npass;
    printf("PASS %s\n", name);
  } else {
    ++check_nfail;
    printf("FAIL %s: ", name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
  }
  fflush(stdout);
  return ok;
}

/* check_esc - bytes as a C string literal, into one of 4 rotating static buffers
 * (long strings are cut, with the length given) */
CHECK_FN const char *check_esc(const char *s, size_t len)
{
  static char bufs[4][1200];
  static int k;
  char *o = bufs[k = (k + 1) & 3];
  size_t n = 0, i;
  if (!s) return "(null)";
  o[n++] = '"';
  for (i = 0; i < len && n < sizeof bufs[0] - 40; ++i) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\r') { o[n++] = '\\'; o[n++] = 'r'; }
    else if (c == '\n') { o[n++] = '\\'; o[n++] = 'n'; }
    else if (c == '\t') { o[n++] = '\\'; o[n++] = 't'; }
    else if (c == '\\' || c == '"') { o[n++] = '\\'; o[n++] = (char)c; }
    else if (c < 32 || c > 126) n += (size_t)sprintf(o + n, "\\x%02x", c);
    else o[n++] = (char)c;
  }
  o[n++] = '"';
  if (i < len) n += (size_t)sprintf(o + n, "...(%zu bytes)", len);
  o[n] = 0;
  return o;
}

/* check_bytes - got[0..glen) equals want[0..wlen) */
CHECK_FN int check_bytes(const char *name, const char *got, size_t glen, const char *want, size_t wlen)
{
  return check(glen == wlen && (!glen || !memcmp(got, want, glen)), name, "got %s, want %s",
               check_esc(got, glen), check_esc(want, wlen));
}

CHECK_FN int check_str(const char *name, const char *got, const char *want)
{
  if (!got || !want)
    return check(got == want, name, "got %s, want %s", got ? check_esc(got, strlen(got)) : "(null)",
                 want ? check_esc(want, strlen(want)) : "(null)");
  return check_bytes(name, got, strlen(got), want, strlen(want));
}

CHECK_FN int check_long(const char *name, long got, long want)
{
  return check(got == want, name, "got %ld, want %ld", got, want);
}

CHECK_FN int check_done(void)
{
  fflush(stdout);
  return check_nfail ? 1 : 0;
}

CHECK_FN void check_rmdir(void)
{
  char cmd[300];
  if (!check_dir[0]) return;
  if (chdir("/") == -1) return;
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", check_dir);
  if (system(cmd) == -1) return;
}

/* check_tmpdir - a fresh scratch directory (removed at exit); chdir into it. Exits on error. */
CHECK_FN const char *check_tmpdir(const char *tag)
{
  const char *t = getenv("TMPDIR");
  snprintf(check_dir, sizeof check_dir, "%s/mxg-%s.XXXXXX", t && *t ? t : "/tmp", tag);
  if (!mkdtemp(check_dir) || chdir(check_dir) == -1) {
    printf("FAIL %s: fixture: cannot make a scratch directory: %s\n", tag, strerror(errno));
    exit(1);
  }
  atexit(check_rmdir);
  return check_dir;
}

/* check_write - make a file with these bytes and mode; 0, or -1 (reported as a FAIL) */
CHECK_FN int check_write(const char *path, const char *s, size_t len, int mode)
{
  int fd;
  unlink(path);
  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd == -1 || (len && write(fd, s, len) != (ssize_t)len) || fchmod(fd, (mode_t)mode) == -1) {
    check(0, path, "fixture: cannot write: %s", strerror(errno));
    if (fd != -1) close(fd);
    return -1;
  }
  close(fd);
  return 0;
}

CHECK_FN int check_writes(const char *path, const char *s)
{
  return check_write(path, s, strlen(s), 0644);
}

/* check_readfile - a whole file into a malloc'ed buffer (NUL-terminated); 0 on error */
CHECK_FN char *check_readfile(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  char *s = 0;
  size_t n = 0, cap = 0, r;
  if (!f) return 0;
  for (;;) {
    if (cap - n < 4096) {
      char *t = realloc(s, cap = cap * 2 + 8192);
      if (!t) { free(s); fclose(f); return 0; }
      s = t;
    }
    r = fread(s + n, 1, cap - n - 1, f);
    if (!r) break;
    n += r;
  }
  fclose(f);
  s[n] = 0;
  *len = n;
  return s;
}
#endif
