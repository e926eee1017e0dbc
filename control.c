/* control.c - reads qmail's control files exactly as qmail does: first line only for single
 * values (trailing space, TAB and LF stripped, CR kept), every line for lists (trailing blanks
 * stripped, empty lines and lines starting with # dropped, leading blanks and CR kept).
 * Every reader answers 1 (read), 0 (absent: ENOENT, the caller uses its default) or -1
 * (any other error: the caller answers 421 unable to read controls). The qmail home is
 * $QMAILHOME when set, else the path compiled in from conf-qmail. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <open.h>
#include <readclose.h>
#include "control.h"

#ifndef AUTO_QMAIL
#define AUTO_QMAIL "/var/qmail"
#endif

const char *control_home(void)
{
  const char *x = getenv("QMAILHOME");
  return x && *x ? x : AUTO_QMAIL;
}

int control_chdir(void) { return chdir(control_home()); }

/* readwhole - the file's bytes into sa; 1, 0 absent, -1 error */
static int readwhole(stralloc *sa, const char *fn)
{
  int fd = open_read(fn);
  if (fd == -1) return errno == ENOENT ? 0 : -1;
  sa->len = 0;
  if (readclose(fd, sa, 256) == -1) return -1;
  return 1;
}

static size_t striptrailing(const char *s, size_t len)
{
  while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\n')) --len;
  return len;
}

int control_readline(stralloc *sa, const char *fn)
{
  static stralloc raw;
  size_t len;
  int r = readwhole(&raw, fn);
  if (r != 1) return r;
  len = raw.len;
  if (memchr(raw.s, '\n', len)) len = (size_t)((char *)memchr(raw.s, '\n', len) - raw.s);
  len = striptrailing(raw.s, len);
  if (!stralloc_copyb(sa, raw.s, len)) return -1;
  return 1;
}

unsigned long control_scanulong(const char *s, size_t *used)
{
  unsigned long u = 0;
  size_t i = 0;
  while (s[i] >= '0' && s[i] <= '9') u = u * 10 + (unsigned long)(s[i++] - '0');
  if (used) *used = i;
  return u;
}

int control_readint(int *i, const char *fn)
{
  static stralloc line;
  size_t used;
  unsigned long u;
  int r = control_readline(&line, fn);
  if (r != 1) return r;
  if (!stralloc_0(&line)) return -1;
  u = control_scanulong(line.s, &used);
  if (!used) return 0;
  *i = (int)u;
  return 1;
}

int control_readfile(stralloc *sa, const char *fn)
{
  static stralloc raw;
  size_t pos = 0;
  int r = readwhole(&raw, fn);
  sa->len = 0;
  if (r != 1) return r;
  while (pos < raw.len) {
    char *nl = memchr(raw.s + pos, '\n', raw.len - pos);
    size_t end = nl ? (size_t)(nl - raw.s) : raw.len;
    size_t len = striptrailing(raw.s + pos, end - pos);
    if (len && raw.s[pos] && raw.s[pos] != '#') {
      if (!stralloc_catb(sa, raw.s + pos, len)) return -1;
      if (!stralloc_0(sa)) return -1;
    }
    pos = end + 1;
  }
  return 1;
}

static unsigned lowc(unsigned char c) { return c >= 'A' && c <= 'Z' ? c + 32u : c; }

static unsigned hashci(const char *s, size_t len)
{
  unsigned h = 5381;
  while (len--) h = (h * 33) ^ lowc((unsigned char)*s++);
  return h;
}

static int eqci(const char *a, const char *b, size_t len)
{
  while (len--)
    if (lowc((unsigned char)*a++) != lowc((unsigned char)*b++)) return 0;
  return 1;
}

int cmap_load(struct cmap *m, const char *fn)
{
  free(m->slot);
  m->slot = 0;
  m->built = 0;
  return control_readfile(&m->sa, fn);
}

/* build - an open-addressing table over the entries (NUL bytes inside a line split it in
 * two, as in qmail's constmap) */
static int build(struct cmap *m)
{
  size_t n = 0, i, size = 4;
  for (i = 0; i < m->sa.len; ++i)
    if (!m->sa.s[i]) ++n;
  while (size < 2 * n) size *= 2;
  m->slot = calloc(size, sizeof *m->slot);
  if (!m->slot) return -1;
  m->mask = (unsigned)size - 1;
  for (i = 0; i < m->sa.len; i += strlen(m->sa.s + i) + 1) {
    unsigned h = hashci(m->sa.s + i, strlen(m->sa.s + i)) & m->mask;
    while (m->slot[h]) h = (h + 1) & m->mask;
    m->slot[h] = (unsigned)i + 1;
  }
  m->built = 1;
  return 0;
}

int cmap_has(struct cmap *m, const char *s, size_t len)
{
  unsigned h;
  if (!m->sa.len) return 0;
  if (!m->built && build(m) == -1) return -1;
  for (h = hashci(s, len) & m->mask; m->slot[h]; h = (h + 1) & m->mask) {
    const char *e = m->sa.s + m->slot[h] - 1;
    if (strlen(e) == len && eqci(e, s, len)) return 1;
  }
  return 0;
}

/* control_cdbcheck - zero bytes or a cut file would read as a valid cdb with no keys (every
 * user unknown): check the header's 256 table pointers against the file size */
int control_cdbcheck(int fd)
{
  unsigned char h[2048];
  struct stat st;
  size_t got = 0;
  int i;
  if (fstat(fd, &st) == -1) return -1;
  if (!S_ISREG(st.st_mode) || st.st_size < 2048) { errno = EPROTO; return -1; }
  while (got < sizeof h) {
    ssize_t r = pread(fd, h + got, sizeof h - got, (off_t)got);
    if (r == -1 && errno == EINTR) continue;
    if (r <= 0) { if (r == 0) errno = EPROTO; return -1; }
    got += (size_t)r;
  }
  for (i = 0; i < 256; ++i) {
    const unsigned char *e = h + 8 * i;
    unsigned long long pos = e[0] | (unsigned long long)e[1] << 8 | (unsigned long long)e[2] << 16 |
                             (unsigned long long)e[3] << 24;
    unsigned long long n = e[4] | (unsigned long long)e[5] << 8 | (unsigned long long)e[6] << 16 |
                           (unsigned long long)e[7] << 24;
    if (pos < 2048 || pos + 8 * n > (unsigned long long)st.st_size) { errno = EPROTO; return -1; }
  }
  return 0;
}
