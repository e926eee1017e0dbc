/* instruct.c - applies an ipsvd instructions cdb (ipsvd-cdb's format) to this connection
 * before anything reads the environment. Keys are tried in ipsvd's order: the IP, its
 * prefixes cut at dots (192.0.2, 192.0, 192), the host name from TCPREMOTEHOST and its parent
 * domains, then "0"; the first key present wins. A value ends in its type byte: I (lines
 * separated by NUL: "+NAME=VALUE" sets, "+NAME" unsets, # and empty lines are skipped),
 * D (deny) or X (run "/bin/sh -c TEXT" instead of the smtpd). Lines ipsvd knows that a
 * per-connection smtpd cannot honour - "C" (concurrency, tcpsvd's job) and "=host[:target]"
 * (a DNS confirmation) - are reported and ignored. Path: $INSTRUCTCDB, else
 * control/instruct.cdb; a missing file means no instructions, any other open or read error
 * and a broken value are INSTRUCT_ERROR, which smtpd.c answers with 421. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <open.h>
#include <cdb.h>
#include "control.h"
#include "instruct.h"

const char *instruct_path(void)
{
  const char *x = getenv("INSTRUCTCDB");
  return x ? x : INSTRUCT_DEFAULT;
}

/* instruct_lines - the lines of an I value: set(name, value) for "+NAME=VALUE", set(name, 0)
 * for "+NAME", other(line) for every other line that is not empty or a comment */
void instruct_lines(char *v, size_t len, void (*set)(void *arg, const char *name, const char *value),
                    void (*other)(void *arg, const char *line), void *arg)
{
  size_t pos = 0;
  while (pos < len) {
    char *line = v + pos, *eq;
    size_t n = strlen(line);  /* v[len] is a NUL put there by the caller */
    pos += n + 1;
    if (!n || line[0] == '#') continue;
    if (line[0] == '+') {
      if (!line[1] || line[1] == '=') continue;
      eq = strchr(line + 1, '=');
      if (eq) { *eq = 0; set(arg, line + 1, eq + 1); *eq = '='; }
      else set(arg, line + 1, 0);
    } else
      other(arg, line);
  }
}

struct warner { void (*warn)(const char *, const char *); };

static void envset(void *arg, const char *name, const char *value)
{
  (void)arg;
  if (value) setenv(name, value, 1);
  else unsetenv(name);
}

static void envother(void *arg, const char *line)
{
  struct warner *w = arg;
  void (*warn)(const char *, const char *) = w->warn;
  if (line[0] == 'C') warn("concurrency limits belong to tcpsvd -C", line);
  else if (line[0] == '=') warn("=host DNS checks are not supported", line);
  else warn("unknown instruction", line);
}

static int lookup(struct cdb *c, const char *key, size_t len)
{
  return cdb_find(c, (const unsigned char *)key, len);
}

/* find - the first key present in ipsvd's order; 1 with *key set, 0, -1 */
static int find(struct cdb *c, const char *ip, const char *host, const char **key)
{
  static stralloc k;
  size_t len;
  int r;
  if (!stralloc_copys(&k, ip)) return -1;
  for (len = k.len; len; ) {
    if ((r = lookup(c, k.s, len))) { k.len = len; goto found; }
    if (strchr(ip, ':')) break;  /* IPv6: the exact address only */
    while (len && k.s[len - 1] != '.') --len;
    if (len) --len;
  }
  if (host && *host && *host != '.') {
    size_t at = 0, i;
    if (!stralloc_copys(&k, host)) return -1;
    for (i = 0; i < k.len; ++i)
      if (k.s[i] >= 'A' && k.s[i] <= 'Z') k.s[i] += 32;
    for (;;) {
      if ((r = lookup(c, k.s + at, k.len - at))) {
        memmove(k.s, k.s + at, k.len - at);
        k.len -= at;
        goto found;
      }
      while (at < k.len && k.s[at] != '.') ++at;
      if (at + 1 >= k.len) break;
      ++at;
    }
  }
  if ((r = lookup(c, "0", 1))) { if (!stralloc_copys(&k, "0")) return -1; goto found; }
  return 0;
found:
  if (r == -1) return -1;
  if (!stralloc_0(&k)) return -1;
  *key = k.s;
  return 1;
}

int instruct_get(const char *path, const char *ip, const char *host, stralloc *v, const char **key)
{
  struct cdb c = {0};  /* libowfat's cdb_init frees what it finds first */
  int fd, r;
  unsigned len;
  char type;
  *key = 0;
  if (!*path) return INSTRUCT_NONE;
  fd = open_read(path);
  if (fd == -1) return errno == ENOENT ? INSTRUCT_NONE : INSTRUCT_ERROR;
  if (control_cdbcheck(fd) == -1) { close(fd); return INSTRUCT_ERROR; }
  cdb_init(&c, fd);
  r = find(&c, ip, host, key);
  if (r != 1) { cdb_free(&c); close(fd); return r == 0 ? INSTRUCT_NONE : INSTRUCT_ERROR; }
  len = cdb_datalen(&c);
  if (!len || len > INSTRUCT_VALUE_MAX || !stralloc_ready(v, len + 1) ||
      cdb_read(&c, (unsigned char *)v->s, len, cdb_datapos(&c)) == -1) {
    cdb_free(&c); close(fd);
    return INSTRUCT_ERROR;
  }
  cdb_free(&c);
  close(fd);
  type = v->s[len - 1];
  v->s[len - 1] = 0;
  v->len = len - 1;
  switch (type) {
    case 'I': return INSTRUCT_ALLOW;
    case 'D': return INSTRUCT_DENY;
    case 'X': return INSTRUCT_EXEC;
  }
  return INSTRUCT_NONE;  /* ipsvd: a value without a type byte is "no entry" */
}

int instruct_apply(const char *path, const char *ip, const char *host, stralloc *cmd,
                   const char **key, void (*warn)(const char *, const char *))
{
  static stralloc v;
  struct warner w;
  int r = instruct_get(path, ip, host, &v, key);
  w.warn = warn;
  if (r == INSTRUCT_ALLOW) instruct_lines(v.s, v.len, envset, envother, &w);
  if (r == INSTRUCT_EXEC && !(stralloc_copyb(cmd, v.s, v.len) && stralloc_0(cmd))) return INSTRUCT_ERROR;
  return r;
}
