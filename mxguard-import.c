/* mxguard-import - "mxguard-import spamdyke CONFIG OUTDIR": reads a spamdyke configuration
 * (option=value lines, config-file includes, the config-dir's _ip_ and _rdns_ trees) and writes
 * what mxguard can do of it: OUTDIR/control/ files (dnsbl, rhsbl, requireptr, returnmxcheck,
 * badmailfrom, timeoutsmtpd, servercert.pem), OUTDIR/env/ files for the service directory
 * (LOGLEVEL), and OUTDIR/peers/, an ipsvd instructions directory (one file per address, prefix
 * or host name) compiled with ipsvd-cdb into OUTDIR/control/instruct.cdb. Every option it cannot
 * translate, or translates only in part, is printed as "FILE:LINE: option: why". Exit 0 all
 * translated, 1 some not, 100 usage, 111 a file could not be read or written. */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "version.h"

#define LIST_MAX 10000
#define DEPTH_MAX 5

static const char *outdir;
static int untranslated;

static void die(const char *fmt, ...)
{
  va_list ap;
  fputs("mxguard-import: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(111);
}

static void nope(const char *file, unsigned line, const char *opt, const char *why)
{
  printf("%s:%u: %s: %s\n", file, line, opt, why);
  ++untranslated;
}

/* ---- lists with spamdyke's "!value" (remove) and "!!!" (clear) */
struct list { char *v[LIST_MAX]; int n; };
static struct list dnsbl, rhsbl, badfrom, ipdeny, ipallow, rdnsdeny;
static void list_do(struct list *l, const char *v)
{
  int i;
  if (!strcmp(v, "!!!")) { for (i = 0; i < l->n; ++i) free(l->v[i]); l->n = 0; return; }
  if (v[0] == '!') {
    for (i = 0; i < l->n; ++i)
      if (!strcmp(l->v[i], v + 1)) { free(l->v[i]); l->v[i] = l->v[--l->n]; return; }
    return;
  }
  if (l->n < LIST_MAX && (l->v[l->n] = strdup(v))) ++l->n;
}
/* list_file - each non-comment line of a spamdyke list file */
static void list_file(struct list *l, const char *fn, const char *from, unsigned line, const char *opt)
{
  FILE *f = fopen(fn, "r");
  char buf[1024];
  if (!f) { nope(from, line, opt, "the list file cannot be read: not translated"); return; }
  while (fgets(buf, sizeof buf, f)) {
    buf[strcspn(buf, "\r\n")] = 0;
    if (!buf[0] || buf[0] == '#') continue;
    list_do(l, buf);
  }
  fclose(f);
}

/* ---- single settings */
static int requireptr;        /* 0, 1, 2 fcrdns */
static int returnmx = -1;
static long timeout = -1;
static int loglevel = -1;
static char *certfile, *keyfile;

static int boolean(const char *v)
{
  return !v || !*v || !strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcmp(v, "1");
}

/* ---- per-client entries (the peers directory) */
static void entry(const char *name, const char *text, int mode)
{
  char path[4096];
  FILE *f;
  snprintf(path, sizeof path, "%s/peers/%s", outdir, name);
  if (!(f = fopen(path, "a"))) die("cannot write %s: %s", path, strerror(errno));
  fputs(text, f);
  if (fclose(f)) die("cannot write %s: %s", path, strerror(errno));
  if (chmod(path, (mode_t)mode)) die("cannot chmod %s: %s", path, strerror(errno));
}

/* ipsvd's name for a spamdyke IP entry: a dotted quad or a whole-octet prefix; 0 otherwise */
static const char *ipname(const char *v, char *out, size_t size)
{
  int octets = 0, digits = 0;
  size_t i, n = strlen(v);
  if (n && v[n - 1] == '.') --n;  /* "11.22." as "11.22" */
  if (!n || n >= size) return 0;
  for (i = 0; i < n; ++i) {
    if (v[i] >= '0' && v[i] <= '9') { if (++digits > 3) return 0; }
    else if (v[i] == '.' && digits) { ++octets; digits = 0; }
    else return 0;
  }
  if (!digits || octets > 3) return 0;
  memcpy(out, v, n);
  out[n] = 0;
  return out;
}

/* cidr - "a.b.c.d/bits" or "a.b.c.d/m.m.m.m" as ipsvd names (whole-octet prefixes and
 * addresses: at most 128 of them, e.g. /12 as 16 two-octet prefixes): fn(name, ctx) for each;
 * 1 done, 0 not translatable */
#define CIDR_MAX 256
static int cidr(const char *v, void (*fn)(const char *, const char *), const char *ctx)
{
  unsigned a[4], m[4], bits = 33, i, step, n, keep;
  unsigned long base, count, k;
  char name[32];
  const char *slash = strchr(v, '/');
  if (!slash || sscanf(v, "%u.%u.%u.%u", &a[0], &a[1], &a[2], &a[3]) != 4) return 0;
  if (sscanf(slash + 1, "%u.%u.%u.%u", &m[0], &m[1], &m[2], &m[3]) == 4) {
    unsigned long mask = (unsigned long)m[0] << 24 | m[1] << 16 | m[2] << 8 | m[3];
    for (bits = 0; bits < 32 && (mask >> (31 - bits) & 1); ++bits) ;
    if (((mask << bits) & 0xffffffffUL)) return 0;  /* not contiguous */
  } else if (sscanf(slash + 1, "%u", &bits) != 1)
    return 0;
  if (bits > 32 || a[0] > 255 || a[1] > 255 || a[2] > 255 || a[3] > 255) return 0;
  keep = (bits + 7) / 8;                /* octets in each name */
  if (!keep) return 0;                  /* 0.0.0.0/0: not an entry */
  step = 8 * keep - bits;               /* free bits inside the last kept octet */
  n = 1u << step;
  if (n > CIDR_MAX) return 0;
  base = (unsigned long)a[0] << 24 | a[1] << 16 | a[2] << 8 | a[3];
  base &= bits ? 0xffffffffUL << (32 - bits) & 0xffffffffUL : 0;
  count = n;
  for (k = 0; k < count; ++k) {
    unsigned long x = base + (k << (32 - 8 * keep));
    int len = 0;
    for (i = 0; i < keep; ++i)
      len += snprintf(name + len, sizeof name - (size_t)len, "%s%lu", i ? "." : "", (x >> (24 - 8 * i)) & 255);
    fn(name, ctx);
  }
  return 1;
}
static void deny_name(const char *name, const char *ctx) { (void)ctx; entry(name, "", 0); }
static void allow_name(const char *name, const char *ctx)
{
  (void)ctx;
  entry(name, "+DNSBLSKIP=\n+RHSBLSKIP=\n+REQUIREPTR=0\n+RETURNMXCHECK=0\n", 0644);
}

/* ---- one configuration file; ctx: 0 the global file, else the peers entry it applies to */
static void config(const char *fn, const char *ctx, int depth);

static void option(const char *fn, unsigned line, char *opt, char *val, const char *ctx, int depth)
{
  char name[256];
  if (ctx) {
    /* a config-dir file: only what an instruct entry can carry */
    if (!strcmp(opt, "filter-level") && val && !strcmp(val, "allow-all"))
      entry(ctx, "+DNSBLSKIP=\n+RHSBLSKIP=\n+REQUIREPTR=0\n+RETURNMXCHECK=0\n", 0644);
    else if (!strcmp(opt, "relay-level") && val && !strcmp(val, "allow-all"))
      entry(ctx, "+RELAYCLIENT=\n", 0644);
    else if (!strcmp(opt, "relay-level") && val && !strcmp(val, "block-all"))
      entry(ctx, "+RELAYCLIENT\n", 0644);
    else if (!strcmp(opt, "reject-empty-rdns") || !strcmp(opt, "reject-unresolvable-rdns"))
      entry(ctx, boolean(val) ? (opt[7] == 'e' ? "+REQUIREPTR=1\n" : "+REQUIREPTR=fcrdns\n") : "+REQUIREPTR=0\n", 0644);
    else if (!strcmp(opt, "dns-blacklist-entry") && val && !strcmp(val, "!!!"))
      entry(ctx, "+DNSBLSKIP=\n", 0644);
    else if (!strcmp(opt, "rhs-blacklist-entry") && val && !strcmp(val, "!!!"))
      entry(ctx, "+RHSBLSKIP=\n", 0644);
    else if (!strcmp(opt, "idle-timeout-secs") || !strcmp(opt, "log-level")) {
      if (!strcmp(opt, "log-level")) {
        static const char *const lv[] = {"none", "error", "info", "verbose", "debug", "excessive", 0};
        int i;
        for (i = 0; lv[i] && val && strcmp(lv[i], val); ++i) ;
        if (lv[i]) { snprintf(name, sizeof name, "+LOGLEVEL=%d\n", i > 4 ? 4 : i); entry(ctx, name, 0644); }
        else nope(fn, line, opt, "unknown level: not translated");
      } else nope(fn, line, opt, "per-client timeouts are not implemented (control/timeoutsmtpd is global)");
    } else
      nope(fn, line, opt, "not translated for one client (mxguard-migrate(7))");
    return;
  }
  if (!strcmp(opt, "config-file")) {
    if (depth >= DEPTH_MAX) nope(fn, line, opt, "includes nested too deep: not followed");
    else if (val) config(val, 0, depth + 1);
  } else if (!strcmp(opt, "dns-blacklist-entry") && val) list_do(&dnsbl, val);
  else if (!strcmp(opt, "dns-blacklist-file") && val) list_file(&dnsbl, val, fn, line, opt);
  else if (!strcmp(opt, "dns-whitelist-entry") && val) {
    snprintf(name, sizeof name, "%s*-1", val[0] == '!' ? val + 1 : val);
    if (val[0] == '!') { char x[260]; snprintf(x, sizeof x, "!%s", name); list_do(&dnsbl, x); }
    else list_do(&dnsbl, name);
  } else if (!strcmp(opt, "dns-whitelist-file") && val) {
    struct list tmp = {{0}, 0};
    int i;
    list_file(&tmp, val, fn, line, opt);
    for (i = 0; i < tmp.n; ++i) { snprintf(name, sizeof name, "%s*-1", tmp.v[i]); list_do(&dnsbl, name); free(tmp.v[i]); }
  } else if (!strcmp(opt, "rhs-blacklist-entry") && val) list_do(&rhsbl, val);
  else if (!strcmp(opt, "rhs-blacklist-file") && val) list_file(&rhsbl, val, fn, line, opt);
  else if (!strcmp(opt, "reject-empty-rdns")) { if (requireptr < 2) requireptr = boolean(val); }
  else if (!strcmp(opt, "reject-unresolvable-rdns")) {
    if (boolean(val)) {
      requireptr = 2;
      nope(fn, line, opt, "translated as requireptr fcrdns, which is stricter: the PTR name must resolve to the client's address");
    }
  } else if (!strcmp(opt, "reject-sender") && val) {
    if (!strcmp(val, "no-mx")) returnmx = 1;
    else if (!strcmp(val, "none")) returnmx = 0;
    else nope(fn, line, opt, "only no-mx is implemented (control/returnmxcheck)");
  } else if (!strcmp(opt, "reject-recipient") && val) {
    if (strcmp(val, "invalid") && strcmp(val, "none"))
      nope(fn, line, opt, "only invalid is implemented (RCPTCHECK, on by default)");
  } else if (!strcmp(opt, "sender-blacklist-entry") && val) list_do(&badfrom, val);
  else if (!strcmp(opt, "sender-blacklist-file") && val) list_file(&badfrom, val, fn, line, opt);
  else if (!strcmp(opt, "ip-blacklist-entry") && val) list_do(&ipdeny, val);
  else if (!strcmp(opt, "ip-blacklist-file") && val) list_file(&ipdeny, val, fn, line, opt);
  else if (!strcmp(opt, "ip-whitelist-entry") && val) list_do(&ipallow, val);
  else if (!strcmp(opt, "ip-whitelist-file") && val) list_file(&ipallow, val, fn, line, opt);
  else if (!strcmp(opt, "rdns-blacklist-entry") && val) list_do(&rdnsdeny, val);
  else if (!strcmp(opt, "rdns-blacklist-file") && val) list_file(&rdnsdeny, val, fn, line, opt);
  else if (!strcmp(opt, "idle-timeout-secs") && val) timeout = atol(val);
  else if (!strcmp(opt, "log-level") && val) {
    static const char *const lv[] = {"none", "error", "info", "verbose", "debug", "excessive", 0};
    int i;
    for (i = 0; lv[i] && strcmp(lv[i], val); ++i) ;
    if (lv[i]) loglevel = i > 4 ? 4 : i;
    else nope(fn, line, opt, "unknown level: not translated");
  } else if (!strcmp(opt, "tls-certificate-file") && val) { free(certfile); certfile = strdup(val); }
  else if (!strcmp(opt, "tls-privatekey-file") && val) { free(keyfile); keyfile = strdup(val); }
  else if (!strcmp(opt, "config-test") || !strcmp(opt, "run-as-user") || !strcmp(opt, "config-dir-search"))
    nope(fn, line, opt, "not needed (mxguard-check(8) checks a configuration; tcpserver -u sets the user)");
  else if (!strcmp(opt, "smtp-auth-command") || !strcmp(opt, "smtp-auth-level"))
    nope(fn, line, opt, "give the checkpassword program as mxguard-smtpd's arguments and set SMTPAUTH/AUTHREQUIRED");
  else
    nope(fn, line, opt, "not implemented: not translated (mxguard-migrate(7))");
}

static char *configdirs[16];
static int nconfigdirs;

static void config(const char *fn, const char *ctx, int depth)
{
  FILE *f = fopen(fn, "r");
  char buf[4096];
  unsigned line = 0;
  if (!f) die("cannot read %s: %s", fn, strerror(errno));
  while (fgets(buf, sizeof buf, f)) {
    char *eq, *opt = buf, *val = 0;
    ++line;
    buf[strcspn(buf, "\r\n")] = 0;
    while (*opt == ' ' || *opt == '\t') ++opt;
    if (!*opt || *opt == '#') continue;
    if ((eq = strchr(opt, '='))) { *eq = 0; val = eq + 1; }
    if (!ctx && !strcmp(opt, "config-dir") && val) {
      if (nconfigdirs < 16) configdirs[nconfigdirs++] = strdup(val);
      continue;
    }
    option(fn, line, opt, val, ctx, depth);
  }
  fclose(f);
}

/* ---- config-dir trees: _ip_/11/22/33/44 and _rdns_/com/example/mail (labels reversed) */
static void tree(const char *path, const char *kind, char *name, size_t nlen)
{
  DIR *d = opendir(path);
  struct dirent *e;
  struct stat st;
  char sub[4096];
  if (!d) {
    if (stat(path, &st) || !S_ISREG(st.st_mode)) return;
    if (!nlen) return;
    name[nlen] = 0;
    if (!strcmp(kind, "_ip_") && !ipname(name, sub, sizeof sub)) {
      nope(path, 0, name, "not an address or whole-octet prefix: not translated");
      return;
    }
    config(path, name, 1);
    return;
  }
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name), n2;
    char nm[1024];
    if (e->d_name[0] == '.') continue;
    snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
    if (e->d_name[0] == '_') {
      nope(sub, 0, e->d_name, "nested and _sender_/_recipient_ trees are not implemented: not translated");
      continue;
    }
    if (!strcmp(kind, "_ip_")) {  /* 11/22 -> 11.22 */
      n2 = (size_t)snprintf(nm, sizeof nm, "%.*s%s%s", (int)nlen, name, nlen ? "." : "", e->d_name);
    } else {                       /* com/example -> example.com */
      n2 = (size_t)snprintf(nm, sizeof nm, "%s%s%.*s", e->d_name, nlen ? "." : "", (int)nlen, name);
    }
    (void)l;
    if (n2 >= sizeof nm) continue;
    tree(sub, kind, nm, n2);
  }
  closedir(d);
}

static void configdir(const char *dir)
{
  char path[4096], name[1024];
  DIR *d = opendir(dir);
  struct dirent *e;
  if (!d) die("cannot read %s: %s", dir, strerror(errno));
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (!strcmp(e->d_name, "_ip_") || !strcmp(e->d_name, "_rdns_")) tree(path, e->d_name, name, 0);
    else nope(path, 0, e->d_name, "_sender_ and _recipient_ trees are not implemented: not translated");
  }
  closedir(d);
}

/* ---- output */
static void writefile(const char *rel, const struct list *l, const char *one)
{
  char path[4096];
  FILE *f;
  int i;
  snprintf(path, sizeof path, "%s/%s", outdir, rel);
  if (!(f = fopen(path, "w"))) die("cannot write %s: %s", path, strerror(errno));
  if (one) fprintf(f, "%s\n", one);
  for (i = 0; l && i < l->n; ++i) fprintf(f, "%s\n", l->v[i]);
  if (fclose(f)) die("cannot write %s: %s", path, strerror(errno));
  printf("wrote %s\n", path);
}

static void catfile(FILE *out, const char *fn)
{
  FILE *f = fopen(fn, "r");
  char buf[4096];
  size_t n;
  if (!f) die("cannot read %s: %s", fn, strerror(errno));
  while ((n = fread(buf, 1, sizeof buf, f))) fwrite(buf, 1, n, out);
  fclose(f);
}

int main(int argc, char **argv)
{
  char path[4096], nm[256];
  int i;
  if (argc == 2 && version_arg(argv[1])) version_print("mxguard-import");
  if (argc != 4 || strcmp(argv[1], "spamdyke")) {
    fputs("usage: mxguard-import spamdyke CONFIG OUTDIR\n", stderr);
    return 100;
  }
  outdir = argv[3];
  snprintf(path, sizeof path, "%s/control", outdir);
  mkdir(outdir, 0755);
  if (mkdir(path, 0755) && errno != EEXIST) die("cannot make %s: %s", path, strerror(errno));
  snprintf(path, sizeof path, "%s/env", outdir);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/peers", outdir);
  mkdir(path, 0755);
  config(argv[2], 0, 0);
  for (i = 0; i < nconfigdirs; ++i) configdir(configdirs[i]);
  if (dnsbl.n) writefile("control/dnsbl", &dnsbl, 0);
  if (rhsbl.n) writefile("control/rhsbl", &rhsbl, 0);
  if (requireptr) writefile("control/requireptr", 0, requireptr == 2 ? "fcrdns" : "1");
  if (returnmx >= 0) writefile("control/returnmxcheck", 0, returnmx ? "1" : "0");
  if (timeout >= 0) { snprintf(nm, sizeof nm, "%ld", timeout); writefile("control/timeoutsmtpd", 0, nm); }
  if (loglevel >= 0) { snprintf(nm, sizeof nm, "%d", loglevel); writefile("env/LOGLEVEL", 0, nm); }
  if (badfrom.n) {
    for (i = 0; i < badfrom.n; ++i)
      if (badfrom.v[i][0] == '@')
        printf("%s: sender-blacklist %s: spamdyke also matches subdomains, badmailfrom only the domain itself\n",
               argv[2], badfrom.v[i]);
    writefile("control/badmailfrom", &badfrom, 0);
  }
  for (i = 0; i < ipdeny.n; ++i) {
    if (ipname(ipdeny.v[i], nm, sizeof nm)) deny_name(nm, 0);
    else if (!cidr(ipdeny.v[i], deny_name, 0)) {
      printf("%s: ip-blacklist %s: octet ranges and /0 are not translated\n", argv[2], ipdeny.v[i]);
      ++untranslated;
    }
  }
  for (i = 0; i < ipallow.n; ++i) {
    if (ipname(ipallow.v[i], nm, sizeof nm)) allow_name(nm, 0);
    else if (!cidr(ipallow.v[i], allow_name, 0)) {
      printf("%s: ip-whitelist %s: octet ranges and /0 are not translated\n", argv[2], ipallow.v[i]);
      ++untranslated;
    }
  }
  if (rdnsdeny.n)
    printf("%s: rdns-blacklist: the host-name entries apply only when TCPREMOTEHOST is known "
           "(tcpserver without -H, tcpsvd -h)\n", argv[2]);
  for (i = 0; i < rdnsdeny.n; ++i) {
    const char *h = rdnsdeny.v[i][0] == '.' ? rdnsdeny.v[i] + 1 : rdnsdeny.v[i];
    if (*h && !strchr(h, '/')) entry(h, "", 0);
  }
  if (certfile) {
    FILE *out;
    snprintf(path, sizeof path, "%s/control/servercert.pem", outdir);
    if (!(out = fopen(path, "w"))) die("cannot write %s: %s", path, strerror(errno));
    chmod(path, 0640);
    catfile(out, keyfile ? keyfile : certfile);
    if (keyfile) catfile(out, certfile);
    if (fclose(out)) die("cannot write %s", path);
    printf("wrote %s\n", path);
  }
  {
    /* the peers directory into control/instruct.cdb */
    char cdb[4096], tmp[4200], peers[4096];
    pid_t pid;
    int st;
    DIR *d;
    struct dirent *e;
    int any = 0;
    snprintf(peers, sizeof peers, "%s/peers", outdir);
    if ((d = opendir(peers))) {
      while ((e = readdir(d))) if (e->d_name[0] != '.') any = 1;
      closedir(d);
    }
    if (any) {
      snprintf(cdb, sizeof cdb, "%s/control/instruct.cdb", outdir);
      snprintf(tmp, sizeof tmp, "%s.tmp", cdb);
      if ((pid = fork()) == 0) { execlp("ipsvd-cdb", "ipsvd-cdb", cdb, tmp, peers, (char *)0); _exit(127); }
      if (pid == -1 || waitpid(pid, &st, 0) == -1 || !WIFEXITED(st) || WEXITSTATUS(st))
        printf("%s: could not run ipsvd-cdb: compile it with \"ipsvd-cdb %s %s %s\"\n", peers, cdb, tmp, peers);
      else
        printf("wrote %s (from %s)\n", cdb, peers);
    }
  }
  return untranslated ? 1 : 0;
}
