/* valuser.c - decides at RCPT whether a local recipient exists: yes (no opinion, the next
 * check runs), no (550 5.1.1) or cannot tell (451 4.3.0, logged with the cause). It replays
 * what qmail-send, qmail-lspawn and qmail-local would do: control/percenthack, locals (else
 * me), virtualdomains (user@domain, domain, .suffixes, "" - last line wins), users/cdb (exact,
 * then wildcard by wildchars), qmail-getpw's passwd rules, the alias user, the .qmail-EXT and
 * -default search with qmail-local's temporary-error rules. A matched .qmail-default that runs
 * vpopmail's vdelivermail makes it a vpopmail domain: the .qmail-default's action decides
 * (bounce-no-mailbox or delete: unknown users do not exist; anything else is a catch-all),
 * then valias (SQL), the user in SQL (control/vpopmail.mysql) or vpasswd.cdb/vpasswd (a user
 * with the BOUNCE_MAIL flag does not exist), the user before the first '-' (QMAIL_EXT) and
 * ezmlm list directories. qmail-ldap (control/ldapserver): control/goodmailaddr passes, then
 * valldap.c's LDAP entry decides, else (ldaplocaldelivery) the lookup above or only the alias
 * user, as qmail-lspawn does. When control/mxguard-users.cdb exists (written as root by
 * mxguard-users) and LDAP is not used, it alone answers. Remote domains and relay clients
 * (unless RCPTCHECKRELAY) are not checked. A shape of the qmail home we cannot read - LDAP
 * configured but not usable, a -default file running a program other than vdelivermail, a
 * vpopmail domain with no user database, an odd virtualdomains target, users/assign newer
 * than users/cdb - is "no opinion" (accepted, one log line per session and reason): 550 only
 * when the backend that delivers says no such user. Any unreadable control file,
 * cdb read error, open/stat error other than "absent", missing alias user or SQL trouble is
 * VU_TEMP: a recipient is never refused because something was down (with LDAPSOFTOK on a
 * qmail-ldap site it passes instead, as qmail-ldap's). Switches: RCPTCHECK
 * (qmail-ldap; "0"/"no"/"off" off, else on), CHKUSER_START (ALWAYS on, DOMAIN only domains
 * whose .qmail-default bounces, anything else off). Harvest defence: once BADRCPTSOFT unknown
 * recipients were refused, every RCPT reply waits BADRCPTDELAY; once BADRCPTLIMIT were
 * refused, the next RCPT gets 421 and the session ends. */
#define _GNU_SOURCE  /* memmem */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <cdb.h>
#include <stralloc.h>
#include "control.h"
#include "log.h"
#include "valldap.h"
#include "valsql.h"
#include "valuser.h"

#define VU_PATRN 002       /* qmail's conf-patrn: a world-writable home or .qmail defers */
#define VU_BREAK '-'       /* conf-break */
#define VU_USERLEN 32      /* qmail-getpw's GETPW_USERLEN */
#define VU_ALIAS "alias"   /* conf-users */
#define VU_QMAILFILE_MAX 4096  /* bytes of a .qmail-default read to find vdelivermail */
#define VU_BOUNCE_MAIL 0x10    /* vpopmail's gid flag: bounce all mail */
#define BADRCPTSOFT 3      /* unknown recipients before every RCPT reply waits */
#define BADRCPTDELAY 2000  /* ms */
#define BADRCPTLIMIT 10    /* unknown recipients before the session is refused (421) */

/* a case-insensitive map from a control file's "key:value" lines, the last line winning */
struct vmap {
  stralloc sa;
  unsigned *slot;
  unsigned mask;
};

static int loaded;  /* 1 control files read, -1 a read error */
static const char *loaderr;
static struct cmap locals, percenthack, goodmail;
static struct vmap vdom;
static stralloc envnoathost;
static int usecdb, usesql, useldap;
static int assignstale;         /* users/assign newer than users/cdb (or no users/cdb); -1 not
                                  * looked at yet (only a local recipient on the qmail path needs it) */
static int aliasonly;           /* qmail-ldap without ldaplocaldelivery: LDAP, then ~alias */
static unsigned noop_logged;    /* "no opinion" reasons already logged in this session */
static const char *noop_why, *noop_detail;  /* set by noopinion() for the lookup in progress */
static int sw_on = -1, sw_domainmode, sw_relay;
static unsigned soft = BADRCPTSOFT, delay_ms = BADRCPTDELAY, limit = BADRCPTLIMIT;
static unsigned nbad;
static stralloc detail;
static int lasterr;
static int chkuser_domainmode;  /* set for the lookup in progress */
static int liveonly;            /* mxguard-users: never answer from VALUSER_CDB */

static unsigned lowc(unsigned char c) { return c >= 'A' && c <= 'Z' ? c + 32u : c; }

static void lower(char *s, size_t len)
{
  while (len--) { *s = (char)lowc((unsigned char)*s); ++s; }
}

static unsigned hashci(const char *s, size_t len)
{
  unsigned h = 5381;
  while (len--) h = (h * 33) ^ lowc((unsigned char)*s++);
  return h;
}

/* vmap_load - virtualdomains: lines without ':' are ignored; 1, 0 absent, -1 error */
static int vmap_load(struct vmap *m, const char *fn)
{
  size_t n = 0, size = 4, i;
  int r = control_readfile(&m->sa, fn);
  free(m->slot);
  m->slot = 0;
  if (r != 1) return r;
  for (i = 0; i < m->sa.len; ++i)
    if (!m->sa.s[i]) ++n;
  while (size < 2 * n + 2) size *= 2;
  if (!(m->slot = calloc(size, sizeof *m->slot))) return -1;
  m->mask = (unsigned)size - 1;
  for (i = 0; i < m->sa.len; i += strlen(m->sa.s + i) + 1) {
    const char *e = m->sa.s + i, *colon = strchr(e, ':');
    unsigned h;
    if (!colon) continue;
    h = hashci(e, (size_t)(colon - e)) & m->mask;
    for (; m->slot[h]; h = (h + 1) & m->mask) {
      const char *o = m->sa.s + m->slot[h] - 1;
      size_t ol = strcspn(o, ":");
      if (ol == (size_t)(colon - e) && !strncasecmp(o, e, ol)) break;  /* later line wins */
    }
    m->slot[h] = (unsigned)i + 1;
  }
  return 1;
}

/* vmap_get - the value for key, or 0 */
static const char *vmap_get(const struct vmap *m, const char *key, size_t len)
{
  unsigned h;
  if (!m->slot) return 0;
  for (h = hashci(key, len) & m->mask; m->slot[h]; h = (h + 1) & m->mask) {
    const char *o = m->sa.s + m->slot[h] - 1;
    size_t ol = strcspn(o, ":");
    if (ol == len && !strncasecmp(o, key, len)) return o + ol + 1;
  }
  return 0;
}

static unsigned envnum(const char *name, const char *alt, unsigned def, int ms)
{
  const char *x = getenv(name);
  size_t used;
  unsigned long u;
  if (!x && alt) x = getenv(alt);
  if (!x || !*x) return def;
  u = control_scanulong(x, &used);
  if (!used) return def;
  if (ms && strcmp(x + used, "ms")) u *= 1000;  /* BADRCPTDELAY: seconds, or "NNNms" */
  return u > 3600000 ? 3600000 : (unsigned)u;
}

/* switches - the per-client settings, from the environment (tcpserver rules, instruct cdb) */
static void switches(void)
{
  const char *rc = getenv("RCPTCHECK"), *ck = getenv("CHKUSER_START");
  sw_on = 1;
  sw_domainmode = 0;
  if (rc) sw_on = strcmp(rc, "0") && strcasecmp(rc, "no") && strcasecmp(rc, "off");
  else if (ck) {
    sw_on = !strcasecmp(ck, "ALWAYS") || !strcasecmp(ck, "DOMAIN");
    sw_domainmode = !strcasecmp(ck, "DOMAIN");
  }
  sw_relay = getenv("RCPTCHECKRELAY") != 0;
  soft = envnum("BADRCPTSOFT", 0, BADRCPTSOFT, 0);
  delay_ms = envnum("BADRCPTDELAY", 0, BADRCPTDELAY, 1);
  limit = envnum("BADRCPTLIMIT", "CHKUSER_WRONGRCPTLIMIT", BADRCPTLIMIT, 0);
}

static int loadfail(const char *fn) { loaderr = fn; return loaded = -1; }

/* what only some recipients need is read at their first need, so that a remote domain costs
 * no more than locals (or me) and virtualdomains: percenthack (a '%' in the local part),
 * envnoathost (no '@'), the SQL settings (a vpopmail domain). 1 read, -1 error */
static int lazy_ph, lazy_ena, lazy_sql;

static int need_percenthack(void)
{
  if (!lazy_ph) lazy_ph = cmap_load(&percenthack, "control/percenthack") == -1 ? -1 : 1;
  return lazy_ph;
}

static int need_envnoathost(void)
{
  int r;
  if (lazy_ena) return lazy_ena;
  r = control_readline(&envnoathost, "control/envnoathost");
  if (!r) r = control_readline(&envnoathost, "control/me");
  if (!r && !stralloc_copys(&envnoathost, "envnoathost")) r = -1;
  return lazy_ena = r == -1 ? -1 : 1;
}

static int need_sql(void)
{
  int r;
  if (!lazy_sql) {
    r = valsql_configured(VALUSER_SQLCONF);
    usesql = r == 1;
    lazy_sql = r == -1 ? -1 : 1;
  }
  return lazy_sql;
}

/* load - the control files, once per process, on the first recipient */
static int load(void)
{
  int r;
  struct stat st;
  if (loaded) return loaded;
  if ((r = valldap_configured()) == -1) return loadfail("control/ldapserver");
  useldap = r;  /* qmail-ldap: LDAP is asked live, the cdb does not hold its users */
  goodmail.sa.len = 0;
  if (useldap && cmap_load(&goodmail, "control/goodmailaddr") == -1)
    return loadfail("control/goodmailaddr");
  if (!useldap && stat(VALUSER_CDB, &st) == 0) usecdb = 1;
  else if (!useldap && errno != ENOENT) return loadfail(VALUSER_CDB);
  if (usecdb && !liveonly) return loaded = 1;  /* the cdb alone answers: nothing else to read */
  if ((r = cmap_load(&locals, "control/locals")) == -1) return loadfail("control/locals");
  if (!r) {
    locals.sa.len = 0;
    if ((r = control_readline(&locals.sa, "control/me")) == -1) return loadfail("control/me");
    if (r && !stralloc_0(&locals.sa)) return loadfail("control/me");
  }
  if (vmap_load(&vdom, "control/virtualdomains") == -1) return loadfail("control/virtualdomains");
  assignstale = -1;
  return loaded = 1;
}

/* stale - users/assign newer than users/cdb: qmail-newu was not run, deliveries use the new one */
static int stale(void)
{
  struct stat st, cst;
  if (assignstale == -1)
    assignstale = stat("users/assign", &st) == 0 &&
                  (stat("users/cdb", &cst) == -1 ? errno == ENOENT : cst.st_mtime < st.st_mtime);
  return assignstale;
}

void valuser_reset(void)
{
  loaded = 0;
  lazy_ph = lazy_ena = lazy_sql = 0;
  usecdb = usesql = useldap = 0;
  sw_on = -1;
  nbad = 0;
  noop_logged = 0;
  valsql_reset();
  valldap_reset();
}

static void res_set(struct vu_result *res, int r, const char *backend, const char *why)
{
  res->r = r;
  res->backend = backend;
  res->why = why;
}

/* noopinion - a backend shape we cannot read: accept as stock qmail-smtpd, and say why once */
static void noopinion(struct vu_result *res, const char *backend, const char *why,
                      const char *why_detail)
{
  res_set(res, VU_SKIP, backend, why);
  noop_why = why;
  noop_detail = why_detail;
}

static void temp(struct vu_result *res, const char *backend, const char *why, const char *a,
                 const char *b)
{
  lasterr = errno;
  res_set(res, VU_TEMP, backend, why);
  detail.len = 0;
  if (!stralloc_cats(&detail, a ? a : "") || !stralloc_cats(&detail, b ? b : "") ||
      !stralloc_0(&detail))
    res->detail = "out of memory";
  else
    res->detail = detail.s;
}

/* tempno - is errno a temporary error by qmail's error_temp() (or a permission problem,
 * which qmail-local also defers) */
static int tempno(int e)
{
  return e == EINTR || e == ENOMEM || e == ETXTBSY || e == EIO || e == ETIMEDOUT ||
         e == EAGAIN || e == ENFILE || e == EMFILE || e == ENOSPC || e == EACCES ||
         e == EPERM || e == ENOBUFS || e == ESTALE || e == EHOSTUNREACH || e == ENETDOWN;
}

/* the (user, home, dash, ext) that qmail-lspawn hands to qmail-local */
struct nughde {
  stralloc user, home, dash, ext;
  int fromcdb;
};

/* field - the i-th NUL-separated field of v[0..len) into sa */
static int field(stralloc *sa, const char *v, size_t len, int i)
{
  size_t p = 0;
  while (i--) {
    const char *z = memchr(v + p, 0, len - p);
    if (!z) return 0;
    p = (size_t)(z - v) + 1;
  }
  return stralloc_copyb(sa, v + p, strnlen(v + p, len - p));
}

static int cdbvalue(struct cdb *c, stralloc *v)
{
  unsigned len = cdb_datalen(c);
  if (!stralloc_ready(v, len + 1)) return -1;
  if (cdb_read(c, (unsigned char *)v->s, len, cdb_datapos(c)) == -1) return -1;
  v->len = len;
  return 0;
}

static int nughde_set(struct nughde *n, const stralloc *v, const char *rest, size_t restlen)
{
  if (!field(&n->user, v->s, v->len, 0) || !field(&n->home, v->s, v->len, 3) ||
      !field(&n->dash, v->s, v->len, 4) || !field(&n->ext, v->s, v->len, 5) ||
      !stralloc_catb(&n->ext, rest, restlen))
    return -1;
  n->fromcdb = 1;
  return 1;
}

/* userscdb - qmail-lspawn's users/cdb lookup: 1 found, 0 no answer (qmail-getpw), -1 temp */
static int userscdb(const char *l, size_t len, struct nughde *n)
{
  static stralloc key, wild, v;
  struct cdb c = {0};
  size_t i;
  int r, fd = open("users/cdb", O_RDONLY | O_NONBLOCK);
  if (fd == -1) return errno == ENOENT ? 0 : -1;
  if (control_cdbcheck(fd) == -1) { close(fd); return -1; }
  cdb_init(&c, fd);
  r = cdb_find(&c, (const unsigned char *)"", 0);
  if (r == 1) r = cdbvalue(&c, &wild) == -1 ? -1 : 1;
  if (r != 1) goto fail;  /* no wildchars record: qmail-lspawn defers */
  if (!stralloc_copys(&key, "!") || !stralloc_catb(&key, l, len) || !stralloc_0(&key)) goto fail;
  lower(key.s, key.len);
  r = cdb_find(&c, (const unsigned char *)key.s, key.len);
  if (r == -1) goto fail;
  if (r == 1) {
    if (cdbvalue(&c, &v) == -1) goto fail;
    r = nughde_set(n, &v, "", 0);
    goto done;
  }
  for (i = len + 1; i-- > 0;) {
    if (i && !memchr(wild.s, key.s[i], wild.len)) continue;
    r = cdb_find(&c, (const unsigned char *)key.s, i + 1);
    if (r == -1) goto fail;
    if (r == 1) {
      if (cdbvalue(&c, &v) == -1) goto fail;
      r = nughde_set(n, &v, l + i, len - i);
      goto done;
    }
  }
  r = 0;
done:
  cdb_free(&c);
  close(fd);
  return r;
fail:
  cdb_free(&c);
  close(fd);
  return -1;
}

/* filepw - getpwnam over /etc/passwd alone: mxguard-smtpd is linked statically and must not
 * load NSS modules (they crash a static process); mxguard-users sets valuser_getpwnam to the
 * NSS getpwnam. NULL with errno 0: no such user; NULL with errno set: cannot tell. */
static struct passwd *filepw(const char *name)
{
  struct passwd *pw;
  FILE *f = fopen("/etc/passwd", "re");
  if (!f) return 0;
  errno = 0;
  while ((pw = fgetpwent(f)))
    if (!strcmp(pw->pw_name, name)) break;
  if (!pw && errno == ENOENT) errno = 0;
  fclose(f);
  return pw;
}

struct passwd *(*valuser_getpwnam)(const char *) = filepw;

/* qmailgetpw - qmail-getpw's userext(): 1 found, 0 none (the alias user), -1 temp */
static int qmailgetpw(const char *l, size_t len, struct nughde *n)
{
  char name[VU_USERLEN];
  size_t k = len;
  for (;;) {
    if (k < sizeof name && (k == len || l[k] == VU_BREAK)) {
      struct passwd *pw;
      struct stat st;
      memcpy(name, l, k);
      name[k] = 0;
      lower(name, k);
      errno = 0;
      pw = valuser_getpwnam(name);
      if (!pw && errno && errno != ENOENT && errno != ESRCH && errno != EBADF && errno != EPERM)
        return -1;
      if (pw && pw->pw_uid) {
        if (stat(pw->pw_dir, &st) == 0) {
          if (st.st_uid == pw->pw_uid) {
            if (!stralloc_copys(&n->user, name) || !stralloc_copys(&n->home, pw->pw_dir) ||
                !stralloc_copys(&n->dash, k < len ? "-" : "") ||
                !stralloc_copyb(&n->ext, l + k + (k < len), len - k - (k < len)))
              return -1;
            return 1;
          }
        } else if (tempno(errno))  /* EACCES too: qmail-getpw runs as root, we may not */
          return -1;
      }
    }
    if (!k) break;
    --k;
  }
  return 0;
}

/* resolve - local part L to (user, home, dash, ext) as qmail-lspawn does */
static int resolve(const char *l, size_t len, struct nughde *n, struct vu_result *res)
{
  struct passwd *pw;
  int r = aliasonly ? 0 : userscdb(l, len, n);
  n->fromcdb = r == 1;
  if (r == -1) { temp(res, "qmail", "userscdb", "users/cdb", 0); return -1; }
  if (r == 0 && !aliasonly) r = qmailgetpw(l, len, n);
  if (r == -1) { temp(res, "qmail", "getpw", "getpwnam", 0); return -1; }
  if (r == 1) return 0;
  errno = 0;
  if (!(pw = valuser_getpwnam(VU_ALIAS))) {
    temp(res, "qmail", errno ? "passwd" : "noalias", errno ? "/etc/passwd" : "unable to find alias user", 0);
    return -1;
  }
  if (!stralloc_copys(&n->user, VU_ALIAS) || !stralloc_copys(&n->home, pw->pw_dir) ||
      !stralloc_copys(&n->dash, "-") || !stralloc_copyb(&n->ext, l, len)) {
    temp(res, "qmail", "nomem", 0, 0);
    return -1;
  }
  return 0;
}

/* checkhome - qmail-local defers for a home that is world-writable or sticky */
static uid_t homeuid;  /* the owner of the home checkhome() saw last */

static int checkhome(const stralloc *home, struct vu_result *res)
{
  static stralloc h;
  struct stat st;
  if (!stralloc_copy(&h, home) || !stralloc_0(&h)) { temp(res, "qmail", "nomem", 0, 0); return -1; }
  if (stat(h.s, &st) == -1) { temp(res, "qmail", "home", h.s, 0); return -1; }
  if (st.st_mode & (VU_PATRN | 01000)) {
    errno = 0;  /* a mode, not a failed call: no errno in the log */
    temp(res, "qmail", "homemode", h.s, 0);
    return -1;
  }
  homeuid = st.st_uid;
  return 0;
}

/* asroot - run as root (mxguard-users from cron, or a root tcpserver), a .qmail file is read
 * only if its owner could have read it as qmail-local does: not through a symbolic link to
 * someone else's file, not a hard link to a root file. 1 fine, 0 refused */
static int asroot(const struct stat *st, const char *path)
{
  struct stat l;
  if (st->st_uid == homeuid) return 1;
  if (st->st_uid != 0 || st->st_nlink != 1) return 0;
  return lstat(path, &l) == 0 && !S_ISLNK(l.st_mode);  /* a root file, right here */
}

/* qmfile - open home/name as qmail-local's qmeexists: 1 found (its first bytes in body when
 * wanted), 0 absent, -1 temp */
static int qmfile(const stralloc *home, const stralloc *name, stralloc *body,
                  struct vu_result *res)
{
  static stralloc path;
  struct stat st;
  int fd;
  if (!stralloc_copy(&path, home) || !stralloc_cats(&path, "/") || !stralloc_cat(&path, name) ||
      !stralloc_0(&path)) {
    temp(res, "qmail", "nomem", 0, 0);
    return -1;
  }
  fd = open(path.s, O_RDONLY | O_NONBLOCK);
  if (fd == -1) {
    if (errno == ENOENT || !tempno(errno)) return 0;
    temp(res, "qmail", "open", path.s, 0);
    return -1;
  }
  if (fstat(fd, &st) == -1) { close(fd); temp(res, "qmail", "stat", path.s, 0); return -1; }
  if (!S_ISREG(st.st_mode)) { close(fd); return 0; }
  if (st.st_mode & VU_PATRN) {
    close(fd);
    errno = 0;
    temp(res, "qmail", "qmailmode", path.s, 0);
    return -1;
  }
  if (!geteuid() && !asroot(&st, path.s)) {  /* qmail-local, as the user, gets EACCES */
    close(fd);
    errno = EACCES;
    temp(res, "qmail", "qmailowner", path.s, 0);
    return -1;
  }
  body->len = 0;
  if (stralloc_ready(body, VU_QMAILFILE_MAX)) {
    ssize_t got = read(fd, body->s, VU_QMAILFILE_MAX);
    if (got == -1) { close(fd); temp(res, "qmail", "read", path.s, 0); return -1; }
    body->len = (size_t)got;
  }
  close(fd);
  return 1;
}

/* search - qmail-local's .qmail search: 1 found (*isdefault set, *cut = where DEFAULT
 * starts in ext), 0 none, -1 temp */
static int search(const struct nughde *n, stralloc *body, int *isdefault, size_t *cut,
                  struct vu_result *res)
{
  static stralloc safe, name;
  size_t i;
  int r;
  if (!stralloc_copy(&safe, &n->ext)) { temp(res, "qmail", "nomem", 0, 0); return -1; }
  lower(safe.s, safe.len);
  for (i = 0; i < safe.len; ++i)
    if (safe.s[i] == '.') safe.s[i] = ':';
  *isdefault = 0;
  if (!stralloc_copys(&name, ".qmail") || !stralloc_cat(&name, &n->dash) ||
      !stralloc_cat(&name, &safe)) {
    temp(res, "qmail", "nomem", 0, 0);
    return -1;
  }
  if ((r = qmfile(&n->home, &name, body, res))) return r;
  *isdefault = 1;
  for (i = safe.len + 1; i-- > 0;) {
    if (i && safe.s[i - 1] != '-') continue;
    if (!stralloc_copys(&name, ".qmail") || !stralloc_cat(&name, &n->dash) ||
        !stralloc_catb(&name, safe.s, i) || !stralloc_cats(&name, "default")) {
      temp(res, "qmail", "nomem", 0, 0);
      return -1;
    }
    if ((r = qmfile(&n->home, &name, body, res))) { *cut = i; return r; }
  }
  return 0;
}

/* program - does a .qmail file run a program (a '|' line): it decides alone what exists */
static int program(const stralloc *body)
{
  size_t p = 0;
  while (p < body->len) {
    const char *l = body->s + p, *nl = memchr(l, '\n', body->len - p);
    size_t len = nl ? (size_t)(nl - l) : body->len - p;
    if (len && *l == '|') return 1;
    p += len + 1;
  }
  return 0;
}

/* vdeliver - the unknown-user action of a vdelivermail .qmail file: 0 not vpopmail (some other
 * delivery), 1 "unknown users do not exist", 2 catch-all, 3 only delete (for DOMAIN mode) */
static int vdeliver(const stralloc *body)
{
  size_t p = 0, e;
  int found = 0, other = 0, action = 2;
  while (p < body->len) {
    const char *l = body->s + p, *nl = memchr(l, '\n', body->len - p);
    size_t len = nl ? (size_t)(nl - l) : body->len - p;
    p += len + 1;
    if (!len || *l == '#') continue;
    if (*l == '|' && len > 12 && memmem(l, len, "vdelivermail", 12)) {
      while (len && (l[len - 1] == ' ' || l[len - 1] == '\t' || l[len - 1] == '\r')) --len;
      if (len && (l[len - 1] == '\'' || l[len - 1] == '"')) --len;
      for (e = len; e && l[e - 1] != ' ' && l[e - 1] != '\t' && l[e - 1] != '\'' &&
                    l[e - 1] != '"'; --e) ;
      if (len - e == 17 && !memcmp(l + e, "bounce-no-mailbox", 17)) action = 1;
      else if (len - e == 6 && !memcmp(l + e, "delete", 6)) action = 3;
      else action = 2;
      found = 1;
    } else
      other = 1;
  }
  if (!found || other) return 0;
  return action;
}

/* unmap - read a big cdb with pread instead of mmap: one lookup touches ~4 pages at random,
 * and the page faults of a fresh mapping cost more than the reads (and grow with the file) */
static void unmap(struct cdb *c)
{
  if (c->map) munmap(c->map, c->size);
  c->map = 0;
}

static const char *vpfile = "/vpasswd";  /* the file vpasswd() read last, for the log */

/* vpasswd - user in DIR/vpasswd.cdb, else DIR/vpasswd: 1 (*gid), 0 absent, -1 temp,
 * 2 neither file exists */
static int vpasswd(const stralloc *dir, const char *u, size_t ulen, long *gid)
{
  static stralloc path, v;
  struct cdb c = {0};
  const char *p, *end;
  int r, fd;
  if (!stralloc_copy(&path, dir) || !stralloc_cats(&path, "/vpasswd.cdb") || !stralloc_0(&path))
    return -1;
  fd = open(path.s, O_RDONLY | O_NONBLOCK);
  vpfile = "/vpasswd.cdb";
  if (fd != -1) {
    if (control_cdbcheck(fd) == -1) { close(fd); return -1; }
    cdb_init(&c, fd);
    unmap(&c);
    r = cdb_find(&c, (const unsigned char *)u, ulen);
    if (r == 1 && cdbvalue(&c, &v) == -1) r = -1;
    cdb_free(&c);
    close(fd);
    if (r != 1) return r;
    p = memchr(v.s, ':', v.len);          /* crypted:uid:gid:... */
    p = p ? memchr(p + 1, ':', v.len - (size_t)(p + 1 - v.s)) : 0;
    *gid = p ? (long)control_scanulong(p + 1, 0) : 0;
    return 1;
  }
  if (errno != ENOENT) return -1;
  vpfile = "/vpasswd";
  path.len -= 5;  /* ".cdb" and the NUL: DIR/vpasswd */
  path.s[path.len] = 0;
  if ((r = control_readfile(&v, path.s)) != 1) return r == 0 ? 2 : -1;
  for (p = v.s, end = v.s + v.len; p < end; p += strlen(p) + 1)
    if (!strncmp(p, u, ulen) && p[ulen] == ':') {
      const char *g = strchr(p + ulen + 1, ':');
      g = g ? strchr(g + 1, ':') : 0;
      *gid = g ? (long)control_scanulong(g + 1, 0) : 0;
      return 1;
    }
  return 0;
}

/* vpuser - the user record from SQL or the vpasswd files: 1, 0, -1 temp, 2 no database */
static int vpuser(const stralloc *dir, const char *dom, const char *u, size_t ulen, long *gid,
                  struct vu_result *res)
{
  static stralloc name;
  int r;
  if (!stralloc_copyb(&name, u, ulen) || !stralloc_0(&name)) return -1;
  if (usesql) {
    r = valsql_user(name.s, dom, gid);
    if (r == -1) temp(res, "sql", "sql", valsql_error(), 0);
    return r;
  }
  r = vpasswd(dir, u, ulen, gid);
  if (r == -1) temp(res, "vpopmail", "vpasswd", dir->s, vpfile);
  return r;
}

/* ezmlm - DIR/PREFIX/editor for a prefix before a '-' of u: 1, 0, -1 */
static int ezmlm(const stralloc *dir, const char *u, size_t ulen)
{
  static stralloc path;
  struct stat st;
  size_t i;
  for (i = ulen; i-- > 0;) {
    if (u[i] != '-' || !i) continue;
    if (!stralloc_copy(&path, dir) || !stralloc_cats(&path, "/") || !stralloc_catb(&path, u, i) ||
        !stralloc_cats(&path, "/editor") || !stralloc_0(&path))
      return -1;
    if (!memchr(u, '/', i) && stat(path.s, &st) == 0) return 1;
    if (errno != ENOENT && errno != ENOTDIR && tempno(errno)) return -1;
  }
  return 0;
}

/* vpopmail - the address u (lower case) in a vpopmail domain whose .qmail-default runs
 * vdelivermail with the given action (vdelivermail's order, chkuser's steps 6-10) */
static void vpopmail(const stralloc *dir, const char *dom, const char *u, size_t ulen,
                     int action, struct vu_result *res)
{
  static stralloc name;
  long gid = 0;
  size_t dash;
  int r;
  if (action == 2 || (action == 3 && chkuser_domainmode)) {
    res_set(res, VU_YES, "vpopmail", "catchall");
    return;
  }
  if (usesql) {
    if (!stralloc_copyb(&name, u, ulen) || !stralloc_0(&name)) { temp(res, "vpopmail", "nomem", 0, 0); return; }
    r = valsql_valias(name.s, dom);
    if (r == -1) { temp(res, "sql", "valias", valsql_error(), 0); return; }
    if (r) { res_set(res, VU_YES, "sql", "valias"); return; }
  }
  r = vpuser(dir, dom, u, ulen, &gid, res);
  if (r == -1) return;
  if (r == 2) { noopinion(res, "vpopmail", "nodatabase", "no vpasswd.cdb/vpasswd and no SQL settings"); return; }
  if (r == 1) {
    if (gid & VU_BOUNCE_MAIL) res_set(res, VU_NO, usesql ? "sql" : "vpopmail", "bounceflag");
    else res_set(res, VU_YES, usesql ? "sql" : "vpopmail", "user");
    return;
  }
  dash = (size_t)((const char *)memchr(u, '-', ulen) ? (const char *)memchr(u, '-', ulen) - u : 0);
  if (dash) {  /* QMAIL_EXT: joe-news goes to joe */
    r = vpuser(dir, dom, u, dash, &gid, res);
    if (r == -1) return;
    if (r == 1 && !(gid & VU_BOUNCE_MAIL)) { res_set(res, VU_YES, usesql ? "sql" : "vpopmail", "userext"); return; }
  }
  r = ezmlm(dir, u, ulen);
  if (r == -1) { temp(res, "vpopmail", "ezmlm", dir->s, 0); return; }
  if (r) { res_set(res, VU_YES, "vpopmail", "ezmlm"); return; }
  res_set(res, VU_NO, usesql ? "sql" : "vpopmail", "nouser");
}

/* qmail - the rewritten local part L, through qmail-lspawn and qmail-local */
static void qmail(const char *l, size_t len, const char *domain, struct vu_result *res)
{
  static struct nughde n;
  static stralloc body, dir, dom;
  int isdefault, r, action;
  size_t cut = 0;
  if (resolve(l, len, &n, res) == -1) return;
  if (checkhome(&n.home, res) == -1) return;
  if (!n.dash.len) { res_set(res, VU_YES, "qmail", "user"); return; }
  r = search(&n, &body, &isdefault, &cut, res);
  if (r == -1) return;
  if (!r) { res_set(res, VU_NO, "qmail", "nofile"); return; }
  if (!isdefault || !(action = vdeliver(&body))) {
    if (isdefault && program(&body)) noopinion(res, "qmail", "program", ".qmail-default runs a program");
    else res_set(res, VU_YES, "qmail", "qmailfile");
    return;
  }
  /* vpopmail's domain: the users/cdb user field (the real name, also for alias domains) */
  if (!stralloc_copy(&dir, &n.home) || !stralloc_0(&dir) ||
      !(n.fromcdb ? stralloc_copy(&dom, &n.user) : stralloc_copys(&dom, domain)) ||
      !stralloc_0(&dom)) {
    temp(res, "vpopmail", "nomem", 0, 0);
    return;
  }
  --dir.len;
  lower(n.ext.s, n.ext.len);
  if (need_sql() == -1) { temp(res, "control", "control", VALUSER_SQLCONF, 0); return; }
  vpopmail(&dir, dom.s, n.ext.s, n.ext.len, action, res);
}

/* usercdb - the answer from mxguard-users' cdb: D domain, A local@domain, P prefix@domain */
static void usercdb(const char *l, size_t llen, const char *d, size_t dlen, struct vu_result *res)
{
  static stralloc key, v;
  struct cdb c = {0};
  size_t i;
  int r, fd = open(VALUSER_CDB, O_RDONLY | O_NONBLOCK);
  if (fd == -1) { temp(res, "cdb", "open", VALUSER_CDB, 0); return; }
  if (control_cdbcheck(fd) == -1) { temp(res, "cdb", "damaged", VALUSER_CDB, 0); close(fd); return; }
  cdb_init(&c, fd);
  if (!stralloc_copys(&key, "D") || !stralloc_catb(&key, d, dlen)) goto nomem;
  r = cdb_find(&c, (const unsigned char *)key.s, key.len);
  if (r == 1) r = cdbvalue(&c, &v) == -1 ? -1 : 1;
  if (r == -1) goto readerr;
  if (!r) { res_set(res, VU_SKIP, "cdb", "notlocal"); goto done; }
  if (v.len == 1 && v.s[0] == '*') { res_set(res, VU_YES, "cdb", "catchall"); goto done; }
  for (i = llen + 1; i-- > 0;) {
    if (i < llen && l[i] != '-') continue;
    if (!stralloc_copys(&key, i < llen ? "P" : "A") || !stralloc_catb(&key, l, i < llen ? i + 1 : i) ||
        !stralloc_cats(&key, "@") || !stralloc_catb(&key, d, dlen))
      goto nomem;
    lower(key.s + 1, key.len - 1);
    r = cdb_find(&c, (const unsigned char *)key.s, key.len);
    if (r == -1) goto readerr;
    if (r) { res_set(res, VU_YES, "cdb", "listed"); goto done; }
  }
  res_set(res, VU_NO, "cdb", "nouser");
  goto done;
nomem:
  temp(res, "cdb", "nomem", 0, 0);
  goto done;
readerr:
  temp(res, "cdb", "read", VALUSER_CDB, 0);
done:
  cdb_free(&c);
  close(fd);
}

/* ldap - qmail-ldap's qmail-lspawn: the LDAP entry decides; without one the local lookup
 * (ldaplocaldelivery, the default) or the alias user alone. 1 answered, 0 go on locally */
static int ldap(const stralloc *l, const stralloc *dom, struct vu_result *res)
{
  static stralloc a;
  if (!stralloc_copy(&a, l) || !stralloc_cats(&a, "@") || !stralloc_catb(&a, dom->s, dom->len - 1)) {
    temp(res, "ldap", "nomem", 0, 0);
    return 1;
  }
  switch (valldap_lookup(a.s, a.len)) {
    case VL_FOUND: res_set(res, VU_YES, "ldap", "entry"); return 1;
    case VL_DISABLED: res_set(res, VU_NO, "ldap", "disabled"); return 1;
    case VL_DELETED: res_set(res, VU_NO, "ldap", "deleted"); return 1;
    case VL_TEMP: temp(res, "ldap", "ldap", valldap_error(), 0); return 1;
    case VL_UNUSABLE: noopinion(res, "ldap", "unusable", valldap_error()); return 1;
    default: break;
  }
  aliasonly = !valldap_localdelivery();
  return 0;
}

/* goodmailaddr - qmail-ldap's control/goodmailaddr: addresses that pass unchecked. Entries
 * match the address, "@domain", "local@", catchall@domain and (DASH_EXT) a-b-catchall@domain */
static int goodmailaddr(const char *addr, size_t loclen, const stralloc *dom)
{
  static stralloc k;
  size_t i;
  int n = 0;
  if (!goodmail.sa.len) return 0;
  if (!stralloc_copyb(&k, addr, loclen) || !stralloc_cats(&k, "@")) return 0;
  if (cmap_has(&goodmail, k.s, k.len) == 1) return 1;
  if (!stralloc_cat(&k, dom) || cmap_has(&goodmail, k.s, k.len) == 1) return 1;
  if (cmap_has(&goodmail, k.s + loclen, k.len - loclen) == 1) return 1;  /* @domain */
  for (i = 0; i < loclen && n < 4; ++i) {
    if (addr[i] != '-' || !i) continue;
    ++n;
    if (!stralloc_copyb(&k, addr, i + 1) || !stralloc_cats(&k, "catchall@") || !stralloc_cat(&k, dom))
      return 0;
    if (cmap_has(&goodmail, k.s, k.len) == 1) return 1;
  }
  if (!stralloc_copys(&k, "catchall@") || !stralloc_cat(&k, dom)) return 0;
  return cmap_has(&goodmail, k.s, k.len) == 1;
}

static void lookup(const char *addr, size_t len, int live, struct vu_result *res)
{
  static stralloc dom, l, key;
  const char *at = 0, *vd;
  size_t i, loclen;
  res->detail = 0;
  noop_why = 0;
  aliasonly = 0;
  if (load() == -1) { temp(res, "control", "control", loaderr, 0); return; }
  for (i = len; i-- > 0;)
    if (addr[i] == '@') { at = addr + i; break; }
  loclen = at ? (size_t)(at - addr) : len;
  if (!at && need_envnoathost() == -1) { temp(res, "control", "control", "control/envnoathost", 0); return; }
  if (!(at ? stralloc_copyb(&dom, at + 1, len - loclen - 1) : stralloc_copy(&dom, &envnoathost))) {
    temp(res, "control", "nomem", 0, 0);
    return;
  }
  lower(dom.s, dom.len);
  if (memchr(addr, '%', loclen) && need_percenthack() == -1) {
    temp(res, "control", "control", "control/percenthack", 0);
    return;
  }
  if (memchr(addr, '%', loclen) && cmap_has(&percenthack, dom.s, dom.len) == 1) {
    res_set(res, VU_SKIP, "qmail", "percenthack");
    return;
  }
  if (useldap && goodmailaddr(addr, loclen, &dom)) { res_set(res, VU_YES, "ldap", "goodmailaddr"); return; }
  if (usecdb && !live) { usercdb(addr, loclen, dom.s, dom.len, res); return; }
  if (cmap_has(&locals, dom.s, dom.len) == 1) {
    if (!stralloc_copyb(&l, addr, loclen)) { temp(res, "qmail", "nomem", 0, 0); return; }
  } else {
    if (!stralloc_copyb(&key, addr, loclen) || !stralloc_cats(&key, "@") || !stralloc_cat(&key, &dom)) {
      temp(res, "qmail", "nomem", 0, 0);
      return;
    }
    vd = vmap_get(&vdom, key.s, key.len);
    for (i = 0; !vd && i <= dom.len; ++i)
      if (i == dom.len || !i || dom.s[i] == '.') vd = vmap_get(&vdom, dom.s + i, dom.len - i);
    if (!vd || !*vd) { res_set(res, VU_SKIP, "qmail", "notlocal"); return; }
    if (vd[strspn(vd, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+=")]) {
      noopinion(res, "qmail", "vdtarget", "a virtualdomains target that is not a plain prefix");
      return;
    }
    if (!stralloc_copys(&l, vd) || !stralloc_cats(&l, "-") || !stralloc_catb(&l, addr, loclen)) {
      temp(res, "qmail", "nomem", 0, 0);
      return;
    }
  }
  if (!stralloc_0(&dom)) { temp(res, "qmail", "nomem", 0, 0); return; }
  if (useldap && ldap(&l, &dom, res)) return;
  if (!aliasonly && stale()) {
    noopinion(res, "qmail", "assign", "users/assign is newer than users/cdb (qmail-newu not run)");
    return;
  }
  qmail(l.s, l.len, dom.s, res);
}

void valuser_lookup(const char *addr, size_t len, struct vu_result *res) { lookup(addr, len, 0, res); }
void valuser_live(const char *addr, size_t len, struct vu_result *res)
{
  if (!liveonly) { liveonly = 1; loaded = 0; }
  lookup(addr, len, 1, res);
}

unsigned valuser_delay_ms(void) { return sw_on == 1 && nbad >= soft ? delay_ms : 0; }

static void logtemp(const struct vu_result *res)
{
  if (!log_on(LOG_ERROR)) return;
  log_start("error");
  log_str("reason", "valuser");
  log_str("backend", res->backend);
  log_str("why", res->why);
  if (res->detail) log_clients("detail", res->detail);
  if (lasterr && strcmp(res->backend, "sql") && strcmp(res->backend, "ldap"))
    log_clients("errno", strerror(lasterr));
  log_end();
}

/* lognoop - a shape of the qmail home no backend here reads: once per session and reason */
static void lognoop(const struct vu_result *res)
{
  static const char *const whys[] = {"program", "nodatabase", "unusable", "vdtarget", "assign", 0};
  unsigned i;
  for (i = 0; whys[i] && strcmp(whys[i], res->why); ++i) ;
  if (noop_logged & (1u << i)) return;
  noop_logged |= 1u << i;
  if (!log_on(LOG_ERROR)) return;
  log_start("valuser");
  log_str("act", "noopinion");
  log_str("backend", res->backend);
  log_str("why", res->why);
  if (noop_detail) log_clients("detail", noop_detail);
  log_end();
}

/* reasons for the reject/defer line, one per backend */
static const char *nouser_reason(const char *backend)
{
  if (!strcmp(backend, "vpopmail")) return "nouser:vpopmail";
  if (!strcmp(backend, "sql")) return "nouser:sql";
  if (!strcmp(backend, "cdb")) return "nouser:cdb";
  if (!strcmp(backend, "ldap")) return "nouser:ldap";
  return "nouser:qmail";
}

struct decision valuser_check(struct session *s)
{
  struct decision d = DECISION_NONE;
  struct vu_result res;
  if (sw_on == -1) switches();
  if (!sw_on || (s->relayclient && !sw_relay)) return d;
  /* no domain (postmaster, <>): RFC 5321 4.5.1 wants postmaster taken; stock takes them all */
  if (!memchr(s->rcpt.s, '@', s->rcpt.len)) return d;
  if (limit && nbad >= limit) {
    d.code = 421; d.esc = "4.7.0"; d.text = "too many unknown recipients, closing connection";
    d.reason = "harvest"; d.drop = 1; d.delay_ms = delay_ms;
    return d;
  }
  chkuser_domainmode = sw_domainmode;
  valuser_lookup(s->rcpt.s, s->rcpt.len, &res);
  if (res.r == VU_SKIP && noop_why) lognoop(&res);
  if (res.r == VU_TEMP && useldap && getenv("LDAPSOFTOK")) {
    logtemp(&res);  /* qmail-ldap's LDAPSOFTOK: a lookup error lets the recipient pass */
    return d;
  }
  if (res.r == VU_TEMP) {
    logtemp(&res);
    d.code = 451; d.esc = "4.3.0"; d.qmail = 1;
    d.text = "unable to verify that recipient, try again later";
    d.reason = !strcmp(res.backend, "sql") ? "valuser:sql" :
               !strcmp(res.backend, "ldap") ? "valuser:ldap" : "valuser";
  } else if (res.r == VU_NO) {
    d.code = 550; d.esc = "5.1.1"; d.qmail = 1;
    d.text = "sorry, no mailbox here by that name.";
    d.reason = nouser_reason(res.backend);
    if (!strcmp(res.why, "disabled")) {  /* qmail-ldap's text for accountStatus disabled */
      d.esc = "5.2.1"; d.text = "Mailaddress is administratively disabled.";
      d.reason = "disabled:ldap";
    }
    if (nbad >= soft) d.delay_ms = delay_ms;
    ++nbad;
  }
  return d;
}
