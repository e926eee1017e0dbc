/* mxguard-users.c - writes control/mxguard-users.cdb, the list of deliverable local addresses
 * that mxguard-smtpd uses instead of live lookups when the SMTP user cannot read every home
 * directory, vpopmail domain or the SQL password. Run as root (from cron, or after changing
 * users), never setuid. It gathers candidate local parts from every backend (passwd users
 * and their .qmail-* files, users/cdb entries and the .qmail-* files in their homes, the alias
 * user's .qmail-* files, vpopmail's vpasswd.cdb/vpasswd or SQL users, valias rows and ezmlm
 * list directories), then asks valuser.c's live lookup, so the cdb answers exactly as a live
 * lookup would. Keys: "D" domain -> "1" (checked) or "*" (every address exists), "A" local@domain
 * (deliverable), "P" prefix@domain (every local part starting with prefix, which ends in '-',
 * is deliverable). Domains reached only through ".suffix" or "" virtualdomains entries are not
 * listed, so they stay unchecked. Any temporary failure aborts without touching the old cdb
 * (exit 111). Runs are serialised by a lock on control/mxguard-users.lock; the new cdb is
 * written to a fresh mkstemp file in control/ (never a name planted beforehand), synced,
 * checked (its structure, and every domain key written is found) and only then renamed into
 * place, so the live cdb is always a complete one. Users' .qmail-default files are read with
 * O_NOFOLLOW, only when regular, owned by the home's user (or root) and up to USERFILE_MAX. */
#define _GNU_SOURCE  /* memmem */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <cdb.h>
#include <cdb_make.h>
#include <stralloc.h>
#include "control.h"
#include "version.h"
#include "log.h"
#include "valldap.h"
#include "valsql.h"
#include "valuser.h"

#define PROBE "0mxgprobe0"  /* a local part no one has: answers for "anything after prefix" */
#define TMPTEMPLATE "control/mxguard-users.XXXXXX"
#define LOCKFILE "control/mxguard-users.lock"
#define USERFILE_MAX 4096  /* bytes of a user's .qmail-default read to find vdelivermail */

static char tmpname[] = TMPTEMPLATE;
static int tmpmade;
static stralloc doms;  /* the domain keys written, NUL-terminated, to verify the new cdb */

static stralloc cand;   /* candidate resolved local parts, NUL-terminated, lower case */
static char **sorted;
static size_t ncand;
static struct cdb_make cm;
static unsigned long ndom, naddr, npre, nall;
static int usesql;

static void die(int code, const char *a, const char *b)
{
  fprintf(stderr, "mxguard-users: fatal: %s%s\n", a, b ? b : "");
  if (tmpmade) unlink(tmpname);
  exit(code);
}

static void nomem(void) { die(111, "out of memory", 0); }

/* add - one candidate, prefix + rest, '.'->... as given, lower-cased */
static void add(const char *prefix, const char *rest, size_t restlen)
{
  size_t start = cand.len, i;
  if (!stralloc_cats(&cand, prefix) || !stralloc_catb(&cand, rest, restlen) || !stralloc_0(&cand))
    nomem();
  for (i = start; i < cand.len; ++i)
    if (cand.s[i] >= 'A' && cand.s[i] <= 'Z') cand.s[i] += 32;
}

/* qmailfiles - .qmail<dash><pre>REST in dir: candidates prefix + REST (':' back to '.', a
 * trailing "default" kept: it stands for "prefix + anything", probed later) */
static void qmailfiles(const char *dir, const char *dash, const char *pre, const char *prefix)
{
  static stralloc start, rest;
  DIR *d = opendir(dir);
  struct dirent *e;
  size_t i;
  if (!d) {
    if (errno == ENOENT || errno == ENOTDIR) return;
    die(111, "cannot read directory ", dir);
  }
  if (!stralloc_copys(&start, ".qmail") || !stralloc_cats(&start, dash) || !stralloc_cats(&start, pre))
    nomem();
  while ((e = readdir(d))) {
    if (strncmp(e->d_name, start.s, start.len) || !*dash) continue;
    if (!stralloc_copys(&rest, e->d_name + start.len)) nomem();
    for (i = 0; i < rest.len; ++i)
      if (rest.s[i] == ':') rest.s[i] = '.';
    add(prefix, rest.s, rest.len);
  }
  closedir(d);
}

/* vpadd - a vpopmail user, and user-anything (vdelivermail's QMAIL_EXT; probed later) */
static void vpadd(const char *prefix, const char *name, size_t len)
{
  static stralloc ext;
  add(prefix, name, len);
  if (!stralloc_copyb(&ext, name, len) || !stralloc_cats(&ext, "-default")) nomem();
  add(prefix, ext.s, ext.len);
}

static void vpnames(const char *name, void *prefix) { vpadd(prefix, name, strlen(name)); }

/* cdbeach - every record of a cdb file, in order; 0, or -1 */
static int cdbeach(const char *path, void (*fn)(const char *k, size_t kl, const char *d, size_t dl,
                                                 void *ctx), void *ctx)
{
  struct stat st;
  unsigned char *m;
  size_t pos = 2048, end;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd == -1) return errno == ENOENT ? 1 : -1;
  if (control_cdbcheck(fd) == -1 || fstat(fd, &st) == -1) { close(fd); return -1; }
  m = mmap(0, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (m == MAP_FAILED) return -1;
  end = (size_t)m[0] | (size_t)m[1] << 8 | (size_t)m[2] << 16 | (size_t)m[3] << 24;
  while (pos + 8 <= end && end <= (size_t)st.st_size) {
    size_t kl = (size_t)m[pos] | (size_t)m[pos + 1] << 8 | (size_t)m[pos + 2] << 16 | (size_t)m[pos + 3] << 24;
    size_t dl = (size_t)m[pos + 4] | (size_t)m[pos + 5] << 8 | (size_t)m[pos + 6] << 16 | (size_t)m[pos + 7] << 24;
    if (pos + 8 + kl + dl > end) break;
    fn((char *)m + pos + 8, kl, (char *)m + pos + 8 + kl, dl, ctx);
    pos += 8 + kl + dl;
  }
  munmap(m, (size_t)st.st_size);
  return 0;
}

static void vpkey(const char *k, size_t kl, const char *d, size_t dl, void *prefix)
{
  (void)d; (void)dl;
  vpadd(prefix, k, kl);
}

/* vpopdir - a vpopmail domain directory: its users (vpasswd.cdb, vpasswd, SQL), ezmlm lists */
static void vpopdir(const char *dir, const char *domain, const char *prefix)
{
  static stralloc path, lines, pre;
  DIR *d;
  struct dirent *e;
  size_t i;
  if (!stralloc_copys(&pre, prefix) || !stralloc_0(&pre)) nomem();
  if (usesql) {
    if (valsql_names(domain, vpnames, pre.s) == -1) die(111, "SQL: ", valsql_error());
  } else {
    if (!stralloc_copys(&path, dir) || !stralloc_cats(&path, "/vpasswd.cdb") || !stralloc_0(&path)) nomem();
    i = (size_t)cdbeach(path.s, vpkey, pre.s);
    if ((int)i == -1) die(111, "cannot read ", path.s);
    if (i == 1) {
      path.len -= 5;
      path.s[path.len] = 0;
      if (control_readfile(&lines, path.s) == -1) die(111, "cannot read ", path.s);
      for (i = 0; i < lines.len; i += strlen(lines.s + i) + 1)
        vpadd(prefix, lines.s + i, strcspn(lines.s + i, ":"));
    }
  }
  if (!(d = opendir(dir))) die(111, "cannot read directory ", dir);
  while ((e = readdir(d))) {  /* ezmlm: DIR/LIST/editor stands for LIST-anything */
    struct stat st;
    if (e->d_name[0] == '.') continue;
    if (!stralloc_copys(&path, dir) || !stralloc_cats(&path, "/") || !stralloc_cats(&path, e->d_name) ||
        !stralloc_cats(&path, "/editor") || !stralloc_0(&path))
      nomem();
    if (stat(path.s, &st) == 0) {
      if (!stralloc_copys(&path, e->d_name) || !stralloc_cats(&path, "-default")) nomem();
      add(prefix, path.s, path.len);
    }
  }
  closedir(d);
}

/* userfile - the first USERFILE_MAX bytes of a file in a user's home, read as root without
 * trusting it: no symbolic link, a regular file (not /dev/zero, not a FIFO), owned by the
 * home's owner or by root. 1 read, 0 absent or refused (with a warning) */
static int userfile(const char *dir, const char *path, stralloc *body)
{
  struct stat h, st;
  ssize_t r;
  int fd;
  body->len = 0;
  if (stat(dir, &h) == -1) return 0;
  fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd == -1) {
    if (errno == ELOOP) fprintf(stderr, "mxguard-users: warning: %s is a symbolic link, not read\n", path);
    else if (errno != ENOENT && errno != ENOTDIR) die(111, "cannot read ", path);
    return 0;
  }
  if (fstat(fd, &st) == -1) die(111, "cannot stat ", path);
  if (!S_ISREG(st.st_mode) || (st.st_uid != h.st_uid && st.st_uid != 0) ||
      (st.st_uid != h.st_uid && st.st_nlink != 1)) {
    fprintf(stderr, "mxguard-users: warning: %s is not a regular file of its home's owner, not read\n",
            path);
    close(fd);
    return 0;
  }
  if (!stralloc_ready(body, USERFILE_MAX)) nomem();
  r = read(fd, body->s, USERFILE_MAX);
  close(fd);
  if (r == -1) die(111, "cannot read ", path);
  body->len = (size_t)r;
  return 1;
}

static int isvpop(const char *dir)
{
  static stralloc path, body;
  if (!stralloc_copys(&path, dir) || !stralloc_cats(&path, "/.qmail-default") || !stralloc_0(&path)) nomem();
  if (userfile(dir, path.s, &body) != 1) return 0;
  return body.len && memmem(body.s, body.len, "vdelivermail", 12) != 0;
}

/* usersrec - one users/cdb record: exact keys are candidates; every entry's home is searched */
static void usersrec(const char *k, size_t kl, const char *v, size_t vl, void *ctx)
{
  static stralloc prefix, f[6];
  size_t p = 0;
  int i;
  (void)ctx;
  if (!kl || *k != '!') return;
  for (i = 0; i < 6; ++i) {
    size_t n = strnlen(v + p, vl - p);
    if (!stralloc_copyb(&f[i], v + p, n) || !stralloc_0(&f[i])) nomem();
    p += n + (p + n < vl);
  }
  if (k[kl - 1] == 0) {  /* exact: the local part itself */
    add("", k + 1, kl - 2);
    return;
  }
  if (!stralloc_copyb(&prefix, k + 1, kl - 1) || !stralloc_0(&prefix)) nomem();
  qmailfiles(f[3].s, f[4].s, f[5].s, prefix.s);
  add(prefix.s, "default", 7);  /* the prefix itself may be a catch-all (probed) */
  if (!f[5].s[0] && isvpop(f[3].s)) vpopdir(f[3].s, f[0].s, prefix.s);
}

static void passwd(void)
{
  static stralloc prefix;
  struct passwd *pw;
  setpwent();
  while ((pw = getpwent())) {
    const char *c;
    if (!pw->pw_uid || strlen(pw->pw_name) >= 32) continue;
    for (c = pw->pw_name; *c && !(*c >= 'A' && *c <= 'Z'); ++c) ;
    if (*c) continue;
    add("", pw->pw_name, strlen(pw->pw_name));
    if (!stralloc_copys(&prefix, pw->pw_name) || !stralloc_cats(&prefix, "-") || !stralloc_0(&prefix)) nomem();
    qmailfiles(pw->pw_dir, "-", "", prefix.s);
  }
  endpwent();
  if ((pw = getpwnam("alias"))) qmailfiles(pw->pw_dir, "-", "", "");
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void sortcand(void)
{
  size_t i, n = 0;
  for (i = 0; i < cand.len; ++i)
    if (!cand.s[i]) ++n;
  if (!(sorted = malloc((n + 1) * sizeof *sorted))) nomem();
  for (i = 0; i < cand.len; i += strlen(cand.s + i) + 1) sorted[ncand++] = cand.s + i;
  qsort(sorted, ncand, sizeof *sorted, cmp);
}

static void put(char type, const char *local, size_t llen, const char *domain, const char *val)
{
  static stralloc key;
  if (!stralloc_copyb(&key, &type, 1) || !stralloc_catb(&key, local, llen)) nomem();
  if (type != 'D' && (!stralloc_cats(&key, "@") || !stralloc_cats(&key, domain))) nomem();
  if (cdb_make_add(&cm, (unsigned char *)key.s, key.len, (const unsigned char *)val, strlen(val)) == -1)
    die(111, "cannot write ", tmpname);
  if (type == 'D' && (!stralloc_catb(&doms, key.s, key.len) || !stralloc_0(&doms))) nomem();
}

/* ask - the live answer for local@domain; aborts on a temporary failure */
/* ask - the live answer; "no opinion" (a shape valuser.c cannot read) counts as deliverable,
 * so that the cdb never refuses what the live lookup would accept */
static int ask(const char *local, size_t llen, const char *domain)
{
  static stralloc a;
  struct vu_result res;
  if (!stralloc_copyb(&a, local, llen) || !stralloc_cats(&a, "@") || !stralloc_cats(&a, domain)) nomem();
  valuser_live(a.s, a.len, &res);
  if (res.r == VU_TEMP) {
    if (!stralloc_0(&a)) nomem();
    fprintf(stderr, "mxguard-users: fatal: cannot tell for %s: %s %s %s\n", a.s, res.backend, res.why,
            res.detail ? res.detail : "");
    if (tmpmade) unlink(tmpname);
    exit(111);
  }
  return res.r;
}

/* domain - every candidate starting with prefix ("" for a locals domain) */
static void domain(const char *dom, const char *prefix)
{
  static stralloc probe;
  size_t plen = strlen(prefix), lo = 0, hi = ncand, i;
  int r = ask(PROBE, sizeof PROBE - 1, dom);
  if (r == VU_SKIP) return;
  ++ndom;
  if (r == VU_YES) { put('D', dom, strlen(dom), 0, "*"); ++nall; return; }
  put('D', dom, strlen(dom), 0, "1");
  while (lo < hi) {  /* the first candidate >= prefix */
    size_t mid = (lo + hi) / 2;
    if (strcmp(sorted[mid], prefix) < 0) lo = mid + 1; else hi = mid;
  }
  for (i = lo; i < ncand && !strncmp(sorted[i], prefix, plen); ++i) {
    const char *l = sorted[i] + plen;
    size_t len = strlen(l);
    if (i > lo && !strcmp(sorted[i], sorted[i - 1])) continue;
    if (len >= 7 && !strcmp(l + len - 7, "default")) {
      len -= 7;
      if (len && l[len - 1] != '-') continue;
      if (!len) continue;  /* the domain probe answered that */
      if (!stralloc_copyb(&probe, l, len) || !stralloc_cats(&probe, PROBE)) nomem();
      if (ask(probe.s, probe.len, dom) != VU_NO) { put('P', l, len, dom, ""); ++npre; }
      continue;
    }
    if (len && ask(l, len, dom) != VU_NO) { put('A', l, len, dom, ""); ++naddr; }
  }
}

/* lock - one run at a time (overlapping cron runs): the second waits for the first */
static void lock(void)
{
  int fd = open(LOCKFILE, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  DIR *d;
  struct dirent *e;
  if (fd == -1) die(111, "cannot open ", LOCKFILE);
  while (flock(fd, LOCK_EX) == -1)
    if (errno != EINTR) die(111, "cannot lock ", LOCKFILE);
  if (!(d = opendir("control"))) die(111, "cannot read directory ", "control");
  while ((e = readdir(d))) {  /* a killed run's temporary file: no run writes it now */
    static stralloc old;
    if (strncmp(e->d_name, "mxguard-users.", 14) || strlen(e->d_name) != 20 ||
        strchr(e->d_name + 14, '.'))
      continue;
    if (!stralloc_copys(&old, "control/") || !stralloc_cats(&old, e->d_name) || !stralloc_0(&old)) nomem();
    unlink(old.s);
  }
  closedir(d);
}

/* verify - the new cdb opens, is whole, and holds every domain key written */
static void verify(void)
{
  struct cdb c = {0};
  size_t i;
  int fd = open(tmpname, O_RDONLY | O_CLOEXEC);
  if (fd == -1 || control_cdbcheck(fd) == -1) die(111, "new cdb does not verify: ", tmpname);
  cdb_init(&c, fd);
  for (i = 0; i < doms.len; i += strlen(doms.s + i) + 1)
    if (cdb_find(&c, (const unsigned char *)doms.s + i, strlen(doms.s + i)) != 1)
      die(111, "new cdb lacks a domain key: ", doms.s + i);
  cdb_free(&c);
  close(fd);
}

int main(int argc, char **argv)
{
  static stralloc locals, vd, pre;
  size_t i;
  int fd, r;
  (void)argv;
  if (argc == 2 && version_arg(argv[1])) version_print("mxguard-users");
  if (argc > 1) { fprintf(stderr, "usage: mxguard-users\n"); return 100; }
  if (getuid() != geteuid()) die(100, "refusing to run setuid", 0);
  log_init();
  valuser_getpwnam = getpwnam;  /* NSS users too (LDAP, sssd): this tool is linked dynamically */
  if (control_chdir() == -1) die(111, "cannot chdir to ", control_home());
  if ((r = valldap_configured()) == -1) die(111, "cannot read control/ldapserver", 0);
  if (r) {  /* qmail-ldap: users come and go in LDAP; a copy would refuse new ones */
    fprintf(stderr, "mxguard-users: control/ldapserver exists: mxguard-smtpd asks LDAP live and"
                    " does not use " VALUSER_CDB "; nothing written\n");
    return 0;
  }
  lock();
  if ((r = valsql_configured(VALUSER_SQLCONF)) == -1) die(111, "cannot read ", VALUSER_SQLCONF);
  usesql = r;
  if (cdbeach("users/cdb", usersrec, 0) == -1) die(111, "cannot read users/cdb", 0);
  passwd();
  sortcand();
  r = control_readfile(&locals, "control/locals");
  if (!r && (r = control_readline(&locals, "control/me")) == 1 && !stralloc_0(&locals)) nomem();
  if (r == -1) die(111, "cannot read control/locals", 0);
  if (control_readfile(&vd, "control/virtualdomains") == -1) die(111, "cannot read control/virtualdomains", 0);
  fd = mkostemp(tmpname, O_CLOEXEC);  /* O_CREAT|O_EXCL: a planted name or link is never used */
  if (fd == -1) die(111, "cannot create ", TMPTEMPLATE);
  tmpmade = 1;
  if (fchmod(fd, 0644) == -1 || cdb_make_start(&cm, fd) == -1) die(111, "cannot write ", tmpname);
  for (i = 0; i < locals.len; i += strlen(locals.s + i) + 1) {
    char *e = locals.s + i;
    for (r = 0; e[r]; ++r)
      if (e[r] >= 'A' && e[r] <= 'Z') e[r] += 32;
    domain(e, "");
  }
  for (i = 0; i < vd.len; i += strlen(vd.s + i) + 1) {
    char *e = vd.s + i, *colon = strchr(e, ':');
    if (colon && colon[1] && memchr(e, '@', (size_t)(colon - e))) {  /* user@domain entry */
      char *at = memchr(e, '@', (size_t)(colon - e));
      *colon = 0;
      for (r = 0; e[r]; ++r)
        if (e[r] >= 'A' && e[r] <= 'Z') e[r] += 32;
      if (ask(e, (size_t)(at - e), at + 1) != VU_NO) { put('A', e, (size_t)(at - e), at + 1, ""); ++naddr; }
      continue;
    }
    if (!colon || colon == e || *e == '.' || !colon[1]) {
      if (colon && (colon == e || *e == '.') && colon[1])
        fprintf(stderr, "mxguard-users: warning: virtualdomains entry %s: its domains stay unchecked\n", e);
      continue;
    }
    *colon = 0;
    if (!stralloc_copys(&pre, colon + 1) || !stralloc_cats(&pre, "-") || !stralloc_0(&pre)) nomem();
    for (r = 0; e[r]; ++r)
      if (e[r] >= 'A' && e[r] <= 'Z') e[r] += 32;
    domain(e, pre.s);
  }
  if (cdb_make_finish(&cm) == -1 || fsync(fd) == -1 || close(fd) == -1) die(111, "cannot write ", tmpname);
  verify();
  if (rename(tmpname, VALUSER_CDB) == -1) die(111, "cannot rename to ", VALUSER_CDB);
  tmpmade = 0;
  fprintf(stderr, "mxguard-users: %lu domains (%lu catch-all), %lu addresses, %lu prefixes\n",
          ndom, nall, naddr, npre);
  return 0;
}
