/* mxguard-rules - compile, check, show and explain mxguard's rules (mxguard-rules(8)).
 *
 *   mxguard-rules compile     sources -> control/rules.cdb, atomically
 *   mxguard-rules check       every error with file:line, rules that can never match
 *   mxguard-rules show [KEY]  the compiled rules as text (G, g, Ddomain, Uuser@domain)
 *   mxguard-rules explain --ip IP [--helo H] [--from A] --rcpt A [--rcpt A...] [--ptr NAME]
 *                 [--country CC] [--offline] [--log LINE] [--smtpd PATH]
 *
 * Sources, relative to the qmail home ($QMAILHOME or conf-qmail): control/rules (global;
 * "mandatory" rules first for every recipient, the rest as defaults after the domain's),
 * control/rules.d/DOMAIN and control/rules.d/USER@DOMAIN (one file each, as a web panel
 * writes them), control/dynamicptr (the dynamic-PTR regexes) and control/tlds. Files are
 * opened without following symlinks, must be regular and at most 1 MB. A line that does not
 * parse is named (file:line) and its whole set compiles to a marker that makes the daemon
 * answer 451 to whoever reaches it; compile then exits 1. A regex that does not compile skips
 * its rule (compile warns, check fails). The cdb is written to a temporary file made with
 * O_EXCL in control/, synced and renamed over control/rules.cdb under a lock
 * (control/rules.lock), so the daemon sees the old or the new file, never half of one.
 *
 * explain runs the real mxguard-smtpd (next to this program, or --smtpd) on a socket pair
 * with MXG_TRACE set: the daemon itself evaluates every check and rule and logs each step;
 * explain prints the dialogue and those steps in order. DNS and user lookups are real
 * unless --offline (then DNS checks are off and --ptr/--country stand in for the facts).
 * Nothing is queued: explain never sends DATA.
 * Exit: 0 fine, 1 errors in the rules (or explain: a recipient refused), 100 usage, 111 trouble. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cdb.h>
#include <cdb_make.h>
#include <stralloc.h>
#include "control.h"
#include "rules.h"
#include "valsql.h"
#include "valuser.h"

#define FILE_MAX (1024 * 1024)
#define FILES_MAX 1000000

static int errors, warnings, checking;
static unsigned used;

static void die(int code, const char *a, const char *b)
{
  fprintf(stderr, "mxguard-rules: %s%s%s%s\n", a, b ? b : "", errno ? ": " : "", errno ? strerror(errno) : "");
  exit(code);
}

static void nomem(void) { errno = 0; die(111, "out of memory", 0); }

/* readsafe - a source file: no symlinks, regular, bounded; 1 read, 0 absent, -1 error */
static int readsafe(const char *fn, stralloc *sa)
{
  struct stat st;
  int fd = open(fn, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  ssize_t r;
  if (fd == -1) return errno == ENOENT ? 0 : -1;
  if (fstat(fd, &st) == -1) { close(fd); return -1; }
  if (!S_ISREG(st.st_mode)) { close(fd); errno = EINVAL; return -1; }
  if (st.st_size > FILE_MAX) { close(fd); errno = EFBIG; return -1; }
  if (!stralloc_ready(sa, (size_t)st.st_size + 1)) nomem();
  sa->len = 0;
  while ((r = read(fd, sa->s + sa->len, (size_t)st.st_size + 1 - sa->len)) > 0) {
    sa->len += (size_t)r;
    if (sa->len > (size_t)st.st_size) { close(fd); errno = EFBIG; return -1; }
  }
  close(fd);
  if (r == -1) return -1;
  return 1;
}

static void report(const char *kind, const char *origin, const char *msg)
{
  fprintf(stderr, "%s: %s: %s\n", origin, kind, msg);
}

/* lastrule_unconditional - the last rule in set is a terminal one without conditions */
static int terminal_unconditional(const stralloc *set, size_t start)
{
  const unsigned char *h = (const unsigned char *)set->s + start;
  if (start >= set->len) return 0;
  if (h[2] < 1 || h[2] > 4 || (h[3] & 1)) return 0;  /* allow deny noto defer, not observe */
  return (rules_facts_used(set->s + start, set->len - start) & ~RULES_EARLY) == 0;
}

/* compilefile - the lines of one source into sets[0] (mandatory) and sets[1] */
static void compilefile(const char *fn, const char *text, size_t len, int scope, stralloc sets[2])
{
  static stralloc line, origin;
  size_t i = 0, lineno = 0;
  int broken = 0;
  int shadowed[2] = {0, 0};
  while (i < len) {
    const char *nl = memchr(text + i, '\n', len - i);
    size_t n = nl ? (size_t)(nl - (text + i)) : len - i;
    const char *err = 0;
    size_t before[2];
    int r = 0, k;
    char num[24];
    ++lineno;
    if (!stralloc_copyb(&line, text + i, n) || !stralloc_0(&line)) nomem();
    i += n + 1;
    if (memchr(line.s, 0, n)) { err = "NUL byte in line"; r = -1; }
    snprintf(num, sizeof num, ":%lu", (unsigned long)lineno);
    if (!stralloc_copys(&origin, fn) || !stralloc_cats(&origin, num) || !stralloc_0(&origin)) nomem();
    before[0] = sets[0].len; before[1] = sets[1].len;
    if (!err) r = rules_parse_line(sets, line.s, origin.s, scope, &err);
    if (r == -1) {
      report("error", origin.s, err);
      ++errors;
      if (!broken) {
        stralloc mark = {0};
        if (rules_error_rule(&mark, origin.s) == -1) nomem();
        /* first in the set: nobody is answered on a half-understood policy */
        if (!stralloc_cat(&mark, &sets[scope == RS_MANDATORY || scope == RS_DEFAULT ? 0 : 1]))
          nomem();
        if (!stralloc_copy(&sets[scope == RS_MANDATORY || scope == RS_DEFAULT ? 0 : 1], &mark)) nomem();
        broken = 1;
      }
      continue;
    }
    if (r == -2) {
      report(checking ? "error" : "warning", origin.s, err);
      if (checking) ++errors; else ++warnings;
      continue;
    }
    for (k = 0; k < 2; ++k)
      if (sets[k].len > before[k]) {
        if (shadowed[k]) {
          report("warning", origin.s, "can never match: an earlier rule without conditions ends the evaluation");
          ++warnings;
        }
        used |= rules_facts_used(sets[k].s + before[k], sets[k].len - before[k]);
        if (terminal_unconditional(&sets[k], before[k])) shadowed[k] = 1;
      }
  }
}

static struct cdb_make cm;

static void add(const char *k, size_t kl, const char *v, size_t vl)
{
  if (cdb_make_add(&cm, (const unsigned char *)k, kl, (const unsigned char *)v, vl) == -1)
    die(111, "cannot write the cdb", 0);
}

static int validname(const char *n)
{
  const char *p;
  if (!*n || *n == '.' || strlen(n) > 300) return 0;
  for (p = n; *p; ++p) if (*p <= 32 || *p >= 127 || *p == '/') return 0;
  return p[-1] != '~';
}

/* rules kept in SQL by a web panel: the table mxguard_rules (scope, rules) in the database of
 * control/vpopmail.mysql; a scope's rows go after its file's lines, if it has a file */
struct sqlrule { char *scope, *text; int done; };
static struct sqlrule *sqlrules;
static size_t nsql, capsql;

static void gotsql(const char *scope, const char *text, void *ctx)
{
  (void)ctx;
  if (nsql == capsql) {
    capsql = capsql ? capsql * 2 : 64;
    if (capsql > FILES_MAX || !(sqlrules = realloc(sqlrules, capsql * sizeof *sqlrules))) nomem();
  }
  if (!(sqlrules[nsql].scope = strdup(scope)) || !(sqlrules[nsql].text = strdup(text))) nomem();
  sqlrules[nsql++].done = 0;
}

static struct sqlrule *sqlfind(const char *scope)
{
  size_t i;
  for (i = 0; i < nsql; ++i)
    if (!sqlrules[i].done && !strcasecmp(sqlrules[i].scope, scope)) return &sqlrules[i];
  return 0;
}

/* scopeset - compile one domain's or user's lines (a file's, then SQL's) into the cdb */
static void scopeset(const char *name, const char *fn, const stralloc *text, const char *sqltext, int write)
{
  static stralloc fs[2], key, origin;
  int user = strchr(name, '@') != 0;
  size_t j;
  fs[0].len = fs[1].len = 0;
  if (text) compilefile(fn, text->s, text->len, user ? RS_USER : RS_DOMAIN, fs);
  if (sqltext) {
    if (!stralloc_copys(&origin, "mysql:") || !stralloc_cats(&origin, name) || !stralloc_0(&origin)) nomem();
    compilefile(origin.s, sqltext, strlen(sqltext), user ? RS_USER : RS_DOMAIN, fs);
  }
  if (!stralloc_copys(&key, user ? "U" : "D") || !stralloc_cats(&key, name)) nomem();
  for (j = 1; j < key.len; ++j) if (key.s[j] >= 'A' && key.s[j] <= 'Z') key.s[j] += 32;
  if (write && fs[1].len) {
    if (rules_optimize(&fs[1]) == -1) { errno = 0; die(111, "cannot optimise the rules of ", name); }
    add(key.s, key.len, fs[1].s, fs[1].len);
  }
}

static int cmpstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int compile(int write)
{
  static stralloc text, g[2], dyn, key;
  char tmp[] = "control/rules.cdb.XXXXXX";
  int fd = -1, lock = -1, r;
  DIR *dir;
  if (control_chdir() == -1) die(111, "cannot chdir to ", control_home());
  if (write) {
    lock = open("control/rules.lock", O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (lock == -1 || flock(lock, LOCK_EX) == -1) die(111, "cannot lock control/rules.lock", 0);
    fd = mkstemp(tmp);
    if (fd == -1) die(111, "cannot create a temporary file in control/", 0);
    fchmod(fd, 0644);
    if (cdb_make_start(&cm, fd) == -1) die(111, "cannot write ", tmp);
  }
  /* global */
  r = readsafe(RULES_SRC, &text);
  if (r == -1) die(111, "cannot read ", RULES_SRC);
  if (r) compilefile(RULES_SRC, text.s, text.len, RS_DEFAULT, g);
  /* per domain and per user: SQL rows (when vpopmail.mysql is there), then the files */
  r = valsql_configured(VALUSER_SQLCONF);
  if (r == -1) die(111, "cannot read ", VALUSER_SQLCONF);
  if (r && valsql_rules(gotsql, 0) == -1) { errno = 0; die(111, "SQL: ", valsql_error()); }
  dir = opendir(RULES_DIR);
  if (!dir && errno != ENOENT) die(111, "cannot read ", RULES_DIR);
  if (dir) {
    struct dirent *e;
    char **names = 0;
    size_t nn = 0, cap = 0, i;
    while ((e = readdir(dir))) {
      if (!validname(e->d_name)) continue;
      if (nn == cap) {
        cap = cap ? cap * 2 : 64;
        if (cap > FILES_MAX || !(names = realloc(names, cap * sizeof *names))) nomem();
      }
      if (!(names[nn++] = strdup(e->d_name))) nomem();
    }
    closedir(dir);
    qsort(names, nn, sizeof *names, cmpstr);
    for (i = 0; i < nn; ++i) {
      static stralloc path;
      struct sqlrule *sq;
      if (!stralloc_copys(&path, RULES_DIR "/") || !stralloc_cats(&path, names[i]) || !stralloc_0(&path)) nomem();
      r = readsafe(path.s, &text);
      if (r == -1) {
        report("error", path.s, strerror(errno));
        ++errors;
        continue;
      }
      if (!r) continue;
      sq = sqlfind(names[i]);
      scopeset(names[i], path.s, &text, sq ? sq->text : 0, write);
      if (sq) sq->done = 1;
      free(names[i]);
    }
    free(names);
  }
  {
    size_t i;
    for (i = 0; i < nsql; ++i)
      if (!sqlrules[i].done) {
        if (!validname(sqlrules[i].scope)) {
          report("error", "mxguard_rules", "a scope that is not a domain or an address");
          ++errors;
          continue;
        }
        scopeset(sqlrules[i].scope, 0, 0, sqlrules[i].text, write);
        sqlrules[i].done = 1;
      }
  }
  /* the dynamic-PTR list */
  r = readsafe("control/dynamicptr", &text);
  if (r == -1) die(111, "cannot read ", "control/dynamicptr");
  if (r) {
    size_t i = 0, lineno = 0;
    while (i < text.len) {
      const char *nl = memchr(text.s + i, '\n', text.len - i);
      size_t n = nl ? (size_t)(nl - (text.s + i)) : text.len - i;
      static stralloc l;
      const char *err;
      ++lineno;
      if (!stralloc_copyb(&l, text.s + i, n) || !stralloc_0(&l)) nomem();
      i += n + 1;
      while (l.len > 1 && (l.s[l.len - 2] == ' ' || l.s[l.len - 2] == '\t' || l.s[l.len - 2] == '\r'))
        l.s[--l.len - 1] = 0;
      if (!l.s[0] || l.s[0] == '#') continue;
      if (rules_dynamic_add(&dyn, l.s, &err) == -1) {
        char o[64];
        snprintf(o, sizeof o, "control/dynamicptr:%lu", (unsigned long)lineno);
        report(checking ? "error" : "warning", o, err);
        if (checking) ++errors; else ++warnings;
      }
    }
  } else if (used & (1u << 5)) {
    report("warning", RULES_SRC, "dynamic= is used but control/dynamicptr is absent: never yes");
    ++warnings;
  }
  if ((used & (1u << 6)) && access("control/geoipdb", F_OK) == -1) {
    report("warning", RULES_SRC, "country= is used but control/geoipdb is absent: never matches");
    ++warnings;
  }
  /* the TLDs */
  r = readsafe("control/tlds", &text);
  if (r == -1) die(111, "cannot read ", "control/tlds");
  if (write && r) {
    size_t i = 0;
    add("T", 1, "", 0);
    while (i < text.len) {
      const char *nl = memchr(text.s + i, '\n', text.len - i);
      size_t n = nl ? (size_t)(nl - (text.s + i)) : text.len - i, j;
      while (n && (text.s[i + n - 1] == ' ' || text.s[i + n - 1] == '\r')) --n;
      if (n && text.s[i] != '#' && n < 64) {
        if (!stralloc_copys(&key, "t") || !stralloc_catb(&key, text.s + i, n)) nomem();
        for (j = 1; j < key.len; ++j) if (key.s[j] >= 'A' && key.s[j] <= 'Z') key.s[j] += 32;
        add(key.s, key.len, "", 0);
      }
      i += (nl ? (size_t)(nl - (text.s + i)) : text.len - i) + 1;
    }
  }
  if (!write) return errors ? 1 : 0;
  {
    static stralloc four[4], h;
    int k;
    for (k = 0; k < 2; ++k) {
      if (rules_optimize(&g[k]) == -1) { errno = 0; die(111, "cannot optimise the global rules", 0); }
      if (!stralloc_copy(&four[k], &g[k])) nomem();
      if (rules_early(g[k].s ? g[k].s : "", g[k].len, &four[k + 2]) == -1) nomem();
    }
    if (rules_header(&h, used, four) == -1) nomem();
    add("H", 1, h.s, h.len);
  }
  add("G", 1, g[0].s ? g[0].s : "", g[0].len);
  add("g", 1, g[1].s ? g[1].s : "", g[1].len);
  if (dyn.len) add("P", 1, dyn.s, dyn.len);
  if (cdb_make_finish(&cm) == -1 || fsync(fd) == -1 || close(fd) == -1) {
    unlink(tmp);
    die(111, "cannot write ", tmp);
  }
  if (rename(tmp, RULES_CDB) == -1) { unlink(tmp); die(111, "cannot rename to ", RULES_CDB); }
  close(lock);
  return errors ? 1 : 0;
}

static int show(const char *key)
{
  static stralloc v, out;
  static const char *const keys[] = {"G", "g", 0};
  struct cdb c;
  int fd, i;
  if (control_chdir() == -1) die(111, "cannot chdir to ", control_home());
  fd = open(RULES_CDB, O_RDONLY | O_CLOEXEC);
  if (fd == -1) die(111, "cannot open ", RULES_CDB);
  cdb_init(&c, fd);
  for (i = 0; key ? i == 0 : keys[i] != 0; ++i) {
    const char *k = key ? key : keys[i];
    int r = cdb_find(&c, (const unsigned char *)k, strlen(k));
    if (r == -1) die(111, "cannot read ", RULES_CDB);
    if (!r) continue;
    if (!stralloc_ready(&v, cdb_datalen(&c))) nomem();
    if (cdb_read(&c, (unsigned char *)v.s, cdb_datalen(&c), cdb_datapos(&c)) == -1)
      die(111, "cannot read ", RULES_CDB);
    v.len = cdb_datalen(&c);
    out.len = 0;
    if (rules_dump(&out, v.s, v.len) == -1) { errno = 0; die(111, "damaged rule set ", k); }
    printf("# %s\n%.*s", k, (int)out.len, out.s ? out.s : "");
  }
  return 0;
}

/* ---- explain */

static int cl, er;  /* the client end, the daemon's log */
static stralloc logbuf;

static void drain(int wait_ms)
{
  char buf[4096];
  for (;;) {
    struct pollfd p = {er, POLLIN, 0};
    ssize_t n;
    if (poll(&p, 1, wait_ms) <= 0) return;
    n = read(er, buf, sizeof buf);
    if (n <= 0) return;
    if (!stralloc_catb(&logbuf, buf, (size_t)n)) nomem();
    for (;;) {
      char *nl = memchr(logbuf.s, '\n', logbuf.len);
      char *ev;
      size_t l;
      if (!nl) break;
      l = (size_t)(nl - logbuf.s);
      ev = memmem(logbuf.s, l, " event=", 7);
      if (ev && !strncmp(ev, " event=trace ", 13)) printf("      %.*s\n", (int)(logbuf.s + l - ev - 13), ev + 13);
      else if (ev) printf("   log%.*s\n", (int)(logbuf.s + l - ev), ev);
      else if (l) printf("   stderr: %.*s\n", (int)l, logbuf.s);  /* not a log line: show it */
      memmove(logbuf.s, nl + 1, logbuf.len - l - 1);
      logbuf.len -= l + 1;
    }
    wait_ms = 0;
  }
}

/* reply - read one whole reply; its code, or -1 when the daemon closed */
static int reply(void)
{
  static stralloc in;
  char buf[1024];
  in.len = 0;
  for (;;) {
    char *nl;
    ssize_t n;
    while ((nl = in.len ? memchr(in.s, '\n', in.len) : 0)) {
      size_t l = (size_t)(nl - in.s);
      int last = l >= 4 && in.s[3] == ' ';
      drain(20);
      printf("  < %.*s\n", (int)(l && in.s[l - 1] == '\r' ? l - 1 : l), in.s);
      if (last) {
        int code = atoi(in.s);
        memmove(in.s, nl + 1, in.len - l - 1);
        in.len -= l + 1;
        return code;
      }
      memmove(in.s, nl + 1, in.len - l - 1);
      in.len -= l + 1;
    }
    n = read(cl, buf, sizeof buf);
    if (n <= 0) {
      drain(100);
      printf("  (mxguard-smtpd closed the connection)\n");
      return -1;
    }
    if (!stralloc_catb(&in, buf, (size_t)n)) nomem();
  }
}

static int command(const char *verb, const char *arg)
{
  static stralloc c;
  if (!stralloc_copys(&c, verb) || !stralloc_cats(&c, arg ? arg : "") || !stralloc_cats(&c, "\r\n")) nomem();
  printf("  > %.*s\n", (int)c.len - 2, c.s);
  if (write(cl, c.s, c.len) != (ssize_t)c.len) return -1;
  return reply();
}

/* logvalue - key=value from a log line (quoted, \xNN escapes), into out; 1 found */
static int logvalue(const char *line, const char *key, stralloc *out)
{
  size_t kl = strlen(key);
  const char *p = line;
  while ((p = strstr(p, key))) {
    if ((p == line || p[-1] == ' ') && p[kl] == '=') break;
    p += kl;
  }
  if (!p) return 0;
  p += kl + 1;
  out->len = 0;
  {
    int q = *p == '"';
    if (q) ++p;
    for (; *p && (q ? *p != '"' : *p != ' '); ++p) {
      char ch = *p;
      if (ch == '\\' && p[1] == 'x' && p[2] && p[3]) {
        char h[3] = {p[2], p[3], 0};
        ch = (char)strtol(h, 0, 16);
        p += 3;
      }
      if (!stralloc_catb(out, &ch, 1)) nomem();
    }
  }
  if (!stralloc_0(out)) nomem();
  if (out->len > 2 && out->s[0] == '<' && out->s[out->len - 2] == '>') {
    memmove(out->s, out->s + 1, out->len - 3);
    out->s[out->len - 3] = 0;
    out->len -= 2;
  }
  return 1;
}

static int explain(int argc, char **argv)
{
  const char *ip = 0, *helo = "explain.invalid", *from = "", *ptr = 0, *country = 0, *smtpd = 0;
  const char *authuser = 0;
  const char *rcpts[100];
  static stralloc lip, lhelo, lfrom, lto, self;
  int nr = 0, offline = 0, i, sv[2], ep[2], refused = 0, status;
  pid_t pid;
  for (i = 0; i < argc; ++i) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : 0;
    if (!strcmp(a, "--offline")) { offline = 1; continue; }
    if (!v) { errno = 0; die(100, "usage: explain: a value is missing after ", a); }
    ++i;
    if (!strcmp(a, "--ip")) ip = v;
    else if (!strcmp(a, "--helo")) helo = v;
    else if (!strcmp(a, "--from")) from = v;
    else if (!strcmp(a, "--rcpt")) { if (nr < 100) rcpts[nr++] = v; }
    else if (!strcmp(a, "--ptr")) ptr = v;
    else if (!strcmp(a, "--country")) country = v;
    else if (!strcmp(a, "--smtpd")) smtpd = v;
    else if (!strcmp(a, "--auth")) authuser = v;
    else if (!strcmp(a, "--log")) {
      if (logvalue(v, "ip", &lip)) ip = lip.s;
      if (logvalue(v, "helo", &lhelo)) helo = lhelo.s;
      if (logvalue(v, "from", &lfrom)) from = lfrom.s;
      if (logvalue(v, "to", &lto) && nr < 100) rcpts[nr++] = lto.s;
    } else { errno = 0; die(100, "usage: explain: unknown option ", a); }
  }
  if (!ip || !nr) { errno = 0; die(100, "usage: explain --ip IP --rcpt ADDR [--helo H] [--from A] [--ptr NAME] [--country CC] [--auth USER] [--offline] [--log LINE]", 0); }
  if (!smtpd) {
    char *slash = strrchr(argv[-2], '/');
    if (slash) {
      if (!stralloc_copyb(&self, argv[-2], (size_t)(slash - argv[-2] + 1)) ||
          !stralloc_cats(&self, "mxguard-smtpd") || !stralloc_0(&self))
        nomem();
      smtpd = self.s;
    } else smtpd = "mxguard-smtpd";
  }
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1 || pipe(ep) == -1) die(111, "cannot make a socket pair", 0);
  printf("explain: client %s%s%s, HELO %s, MAIL FROM:<%s>%s\n", ip, ptr ? " " : "", ptr ? ptr : "",
         helo, from, offline ? " (offline: no DNS)" : "");
  fflush(stdout);
  pid = fork();
  if (pid == -1) die(111, "cannot fork", 0);
  if (!pid) {
    dup2(sv[1], 0); dup2(sv[1], 1); dup2(ep[1], 2);
    close(sv[0]); close(sv[1]); close(ep[0]); close(ep[1]);
    setenv("TCPREMOTEIP", ip, 1);
    if (!getenv("TCPLOCALIP")) setenv("TCPLOCALIP", "127.0.0.1", 1);
    if (ptr) setenv("TCPREMOTEHOST", ptr, 1); else unsetenv("TCPREMOTEHOST");
    setenv("MXG_TRACE", "1", 1);
    setenv("QMAILQUEUE", "/bin/false", 1);
    if (!getenv("LOGLEVEL")) setenv("LOGLEVEL", "2", 1);
    if (country) setenv("MXG_COUNTRY", country, 1);
    if (offline) {
      setenv("DNSBLSKIP", "1", 1);
      setenv("RHSBLSKIP", "1", 1);
      setenv("REQUIREPTR", "0", 1);
      unsetenv("REQUIREFCRDNS");
      unsetenv("RETURNMXCHECK");
      setenv("MXG_OFFLINE", "1", 1);
    }
    if (authuser) {  /* any password passes (/bin/true as checkpassword), over plain text */
      setenv("FORCETLS", "0", 1);
      execl(smtpd, smtpd, "explain.invalid", "/bin/true", (char *)0);
    }
    execl(smtpd, smtpd, (char *)0);
    fprintf(stderr, "pid=0 event=error reason=exec file=%s\n", smtpd);
    _exit(111);
  }
  close(sv[1]);
  close(ep[1]);
  cl = sv[0];
  er = ep[0];
  signal(SIGPIPE, SIG_IGN);
  printf("  connect\n");
  if (reply() / 100 != 2) goto done;
  if (command("EHLO ", helo) / 100 != 2) goto done;
  if (authuser) {
    static stralloc pl, b64;
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t k;
    if (!stralloc_copyb(&pl, "", 1) || !stralloc_cats(&pl, authuser) || !stralloc_catb(&pl, "", 1) ||
        !stralloc_cats(&pl, "explain"))
      nomem();
    b64.len = 0;
    for (k = 0; k < pl.len; k += 3) {  /* base64 of "\0user\0explain" */
      unsigned v = (unsigned char)pl.s[k] << 16 | (k + 1 < pl.len ? (unsigned char)pl.s[k + 1] << 8 : 0) |
                   (k + 2 < pl.len ? (unsigned char)pl.s[k + 2] : 0);
      char q[4] = {tab[v >> 18 & 63], tab[v >> 12 & 63], k + 1 < pl.len ? tab[v >> 6 & 63] : '=',
                   k + 2 < pl.len ? tab[v & 63] : '='};
      if (!stralloc_catb(&b64, q, 4)) nomem();
    }
    if (!stralloc_0(&b64)) nomem();
    if (command("AUTH PLAIN ", b64.s) != 235) goto done;
  }
  {
    static stralloc m;
    if (!stralloc_copys(&m, "<") || !stralloc_cats(&m, from) || !stralloc_cats(&m, ">") || !stralloc_0(&m)) nomem();
    if (command("MAIL FROM:", m.s) / 100 != 2) { refused = 1; goto done; }
  }
  for (i = 0; i < nr; ++i) {
    static stralloc r;
    int code;
    if (!stralloc_copys(&r, "<") || !stralloc_cats(&r, rcpts[i]) || !stralloc_cats(&r, ">") || !stralloc_0(&r)) nomem();
    code = command("RCPT TO:", r.s);
    if (code == -1) break;
    if (code / 100 != 2) refused = 1;
  }
  command("QUIT", 0);
done:
  close(cl);
  drain(200);
  waitpid(pid, &status, 0);
  fflush(stdout);
  return refused;
}

int main(int argc, char **argv)
{
  if (argc >= 2 && (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version"))) {
    printf("mxguard-rules %s\n", RULES_MAGIC);
    return 0;
  }
  if (argc >= 2 && !strcmp(argv[1], "compile")) {
    int r = compile(1);
    if (errors || warnings)
      fprintf(stderr, "mxguard-rules: %d error(s), %d warning(s); %s written\n", errors, warnings, RULES_CDB);
    return r;
  }
  if (argc >= 2 && !strcmp(argv[1], "check")) {
    int r;
    checking = 1;
    r = compile(0);
    fprintf(stderr, "mxguard-rules: %d error(s), %d warning(s)\n", errors, warnings);
    return r;
  }
  if (argc >= 2 && !strcmp(argv[1], "show")) return show(argc > 2 ? argv[2] : 0);
  if (argc >= 2 && !strcmp(argv[1], "settings")) {  /* the names "set" takes */
    const struct rules_setting *r;
    for (r = rules_settings; r->name; ++r) printf("%-18s %s\n", r->name, r->what);
    return 0;
  }
  if (argc >= 2 && !strcmp(argv[1], "explain")) return explain(argc - 2, argv + 2);
  fprintf(stderr, "usage: mxguard-rules compile | check | show [KEY] | settings | explain --ip IP --rcpt ADDR ...\n");
  return 100;
}
