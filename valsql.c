/* valsql.c - answers valuser.c's vpopmail questions from vpopmail's MySQL tables: the user
 * (the many-domains table "vpopmail", else, when that table does not exist, the domain's own
 * table named after the domain with '.' and '-' as '_') and valias rows. Settings: the first
 * line of control/vpopmail.mysql in vpopmail's own format host|port|user|password|db (port 0:
 * the default; a host starting with '/' is a Unix socket path). libmariadb pulls in libssl and
 * libcrypto, whose relocation costs millions of instructions per exec, so it is loaded with
 * dlopen(VALSQL_LIB) when the first recipient needs SQL, never at start-up. One connection per
 * session, opened on first use with VALSQL_CONNECT_TIMEOUT and VALSQL_QUERY_TIMEOUT; after a
 * failure (library missing, bad settings, server down, query error or timeout) every later
 * question in the session is -1 at once: the caller answers 451, never 5xx. A name the server
 * cannot compare with its columns (not UTF-8, or a character the column's charset lacks:
 * "Illegal mix of collations") cannot name any row: it is "no such user" (0), not trouble, so
 * a client cannot switch the check off for the rest of its session. */
#include <dlfcn.h>
#include <errno.h>
#include <string.h>
#include <stralloc.h>
#include <mysql.h>
#include <mysqld_error.h>
#include "control.h"
#include "valsql.h"

static struct {
  MYSQL *(*init)(MYSQL *);
  int (*options)(MYSQL *, enum mysql_option, const void *);
  MYSQL *(*connect)(MYSQL *, const char *, const char *, const char *, const char *, unsigned int,
                    const char *, unsigned long);
  unsigned long (*escape)(MYSQL *, char *, const char *, unsigned long);
  int (*query)(MYSQL *, const char *, unsigned long);
  MYSQL_RES *(*store)(MYSQL *);
  MYSQL_ROW (*fetch)(MYSQL_RES *);
  void (*freeres)(MYSQL_RES *);
  const char *(*error)(MYSQL *);
  unsigned int (*errnum)(MYSQL *);
  void (*close)(MYSQL *);
} f;

static void *lib;
static MYSQL *db;
static int state;   /* 0 not connected, 1 connected, -1 down for this session */
static int layout;  /* 0 unknown, 1 many-domains, 2 one table per domain */
static stralloc conf, q, esc;
static const char *err = "";
static char errbuf[256];

#define ER_NO_SUCH_TABLE 1146

int valsql_loaded(void) { return lib != 0; }
const char *valsql_error(void) { return err; }

int valsql_configured(const char *conffile)
{
  int r = control_readline(&conf, conffile);
  if (r == 1 && !stralloc_0(&conf)) return -1;
  return r;
}

void valsql_reset(void)
{
  if (db && f.close) f.close(db);
  db = 0;
  state = 0;
  layout = 0;
}

static int fail(const char *why)
{
  err = why;
  if (db) {
    size_t n = strlen(why);
    const char *m = f.error(db);
    if (n > 100) n = 100;
    memcpy(errbuf, why, n);
    errbuf[n++] = ':';
    errbuf[n++] = ' ';
    strncpy(errbuf + n, m ? m : "", sizeof errbuf - n - 1);
    errbuf[sizeof errbuf - 1] = 0;
    err = errbuf;
    f.close(db);
    db = 0;
  }
  state = -1;
  return -1;
}

/* load - the library and its functions */
static int load(void)
{
  if (lib) return 0;
  if (!(lib = dlopen(VALSQL_LIB, RTLD_NOW | RTLD_LOCAL))) return -1;
#define SYM(field, name) if (!(*(void **)&f.field = dlsym(lib, name))) return -1
  SYM(init, "mysql_init"); SYM(options, "mysql_options"); SYM(connect, "mysql_real_connect");
  SYM(escape, "mysql_real_escape_string"); SYM(query, "mysql_real_query");
  SYM(store, "mysql_store_result"); SYM(fetch, "mysql_fetch_row");
  SYM(freeres, "mysql_free_result"); SYM(error, "mysql_error"); SYM(errnum, "mysql_errno");
  SYM(close, "mysql_close");
#undef SYM
  return 0;
}

/* fieldn - the i-th '|' field of the settings line, NUL-terminated in place */
static char *fieldn(char **p)
{
  char *s = *p, *bar;
  if (!s) return "";
  bar = strchr(s, '|');
  if (bar) { *bar = 0; *p = bar + 1; } else *p = 0;
  return s;
}

static int connect_db(void)
{
  static stralloc c;
  unsigned int ct = VALSQL_CONNECT_TIMEOUT, qt = VALSQL_QUERY_TIMEOUT;
  char *p, *host, *port, *user, *pass, *name;
  if (state == 1) return 0;
  if (state == -1) return -1;
  if (load() == -1) { err = "cannot load " VALSQL_LIB; state = -1; return -1; }
  if (!stralloc_copy(&c, &conf)) return fail("out of memory");
  p = c.s;
  host = fieldn(&p); port = fieldn(&p); user = fieldn(&p); pass = fieldn(&p); name = fieldn(&p);
  if (!(db = f.init(0))) return fail("mysql_init failed");
  f.options(db, MYSQL_OPT_CONNECT_TIMEOUT, &ct);
  f.options(db, MYSQL_OPT_READ_TIMEOUT, &qt);
  f.options(db, MYSQL_OPT_WRITE_TIMEOUT, &qt);
  if (!f.connect(db, *host == '/' ? "localhost" : host, user, pass, name,
                 (unsigned)control_scanulong(port, 0), *host == '/' ? host : 0, 0))
    return fail("connect");
  state = 1;
  return 0;
}

static int catesc(stralloc *sa, const char *s)
{
  size_t len = strlen(s);
  if (!stralloc_ready(&esc, 2 * len + 1)) return 0;
  esc.len = f.escape(db, esc.s, s, (unsigned long)len);
  return stralloc_cats(sa, "'") && stralloc_cat(sa, &esc) && stralloc_cats(sa, "'");
}

/* uncomparable - the server's errors for a string it cannot compare with a column */
static int uncomparable(unsigned e)
{
  return e == ER_CANT_AGGREGATE_2COLLATIONS || e == ER_CANT_AGGREGATE_3COLLATIONS ||
         e == ER_CANT_AGGREGATE_NCOLLATIONS || e == ER_INVALID_CHARACTER_STRING;
}

/* utf8ok - well-formed UTF-8 (what the connection's utf8mb4 can carry); no overlong forms,
 * no surrogates, nothing above U+10FFFF */
static int utf8ok(const char *str)
{
  const unsigned char *p = (const unsigned char *)str;
  while (*p) {
    unsigned c = *p, n, min, v, i;
    if (c < 0x80) { ++p; continue; }
    if (c >= 0xc2 && c <= 0xdf) { n = 1; min = 0x80; v = c & 0x1f; }
    else if (c >= 0xe0 && c <= 0xef) { n = 2; min = 0x800; v = c & 0x0f; }
    else if (c >= 0xf0 && c <= 0xf4) { n = 3; min = 0x10000; v = c & 0x07; }
    else return 0;
    for (i = 1; i <= n; ++i) {
      if ((p[i] & 0xc0) != 0x80) return 0;
      v = v << 6 | (p[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    p += n + 1;
  }
  return 1;
}

static int nomatch;  /* userselect: the server could not compare the name */

/* run - the query in q: a result, or 0 with *e set to the server's error number (0 = none) */
static MYSQL_RES *run(unsigned *e)
{
  MYSQL_RES *r;
  *e = 0;
  if (f.query(db, q.s, (unsigned long)q.len) == 0 && (r = f.store(db))) return r;
  *e = f.errnum(db);
  return 0;
}

/* tablename - the one-table-per-domain name: '.' and '-' become '_'; 0 when unsafe */
static int tablename(stralloc *sa, const char *domain)
{
  const char *p;
  for (p = domain; *p; ++p) {
    char ch = *p == '.' || *p == '-' ? '_' : *p;
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_')) return 0;
    if (!stralloc_append(sa, &ch)) return 0;
  }
  return 1;
}

/* userquery - the query for one layout; what is "pw_gid" or "pw_name" */
static int userquery(const char *what, const char *user, const char *domain)
{
  if (!stralloc_copys(&q, "SELECT ") || !stralloc_cats(&q, what)) return 0;
  if (layout == 1) {
    if (!stralloc_cats(&q, " FROM vpopmail WHERE pw_domain=") || !catesc(&q, domain)) return 0;
  } else if (!stralloc_cats(&q, " FROM `") || !tablename(&q, domain) ||
             !stralloc_cats(&q, "` WHERE 1=1"))
    return 0;
  if (user && (!stralloc_cats(&q, " AND pw_name=") || !catesc(&q, user) ||
               !stralloc_cats(&q, " LIMIT 1")))
    return 0;
  return 1;
}

/* userselect - run a user query, finding the layout on the first one */
static MYSQL_RES *userselect(const char *what, const char *user, const char *domain)
{
  MYSQL_RES *r;
  unsigned e;
  if (!layout) layout = 1;
  nomatch = 0;
  for (;;) {
    if (!userquery(what, user, domain)) { fail("bad query (out of memory or odd domain)"); return 0; }
    if ((r = run(&e))) return r;
    if (e == ER_NO_SUCH_TABLE && layout == 1) { layout = 2; continue; }
    if (uncomparable(e)) { nomatch = 1; return 0; }
    fail("query");
    return 0;
  }
}

int valsql_user(const char *user, const char *domain, long *gid)
{
  MYSQL_RES *r;
  MYSQL_ROW row;
  if (!utf8ok(user)) return 0;
  if (connect_db() == -1) return -1;
  if (!(r = userselect("pw_gid", user, domain))) return nomatch ? 0 : -1;
  row = f.fetch(r);
  if (row) *gid = row[0] ? (long)control_scanulong(row[0], 0) : 0;
  f.freeres(r);
  return row ? 1 : 0;
}

int valsql_valias(const char *user, const char *domain)
{
  static stralloc name;
  MYSQL_RES *r;
  unsigned e;
  size_t i, n = strlen(user);
  int found;
  if (!utf8ok(user)) return 0;
  if (connect_db() == -1) return -1;
  if (!stralloc_copys(&q, "SELECT 1 FROM valias WHERE domain=") || !catesc(&q, domain) ||
      !stralloc_cats(&q, " AND alias IN (") || !catesc(&q, user))
    return fail("out of memory");
  for (i = n; i-- > 0;)  /* vdelivermail's PREFIX-default aliases */
    if (user[i] == '-') {
      if (!stralloc_copyb(&name, user, i + 1) || !stralloc_cats(&name, "default") ||
          !stralloc_0(&name) || !stralloc_cats(&q, ",") || !catesc(&q, name.s))
        return fail("out of memory");
    }
  if (!stralloc_cats(&q, ") LIMIT 1")) return fail("out of memory");
  if (!(r = run(&e))) return e == ER_NO_SUCH_TABLE || uncomparable(e) ? 0 : fail("query");
  found = f.fetch(r) != 0;
  f.freeres(r);
  return found;
}

int valsql_names(const char *domain, void (*fn)(const char *name, void *ctx), void *ctx)
{
  MYSQL_RES *r;
  MYSQL_ROW row;
  unsigned e;
  if (connect_db() == -1) return -1;
  if (!(r = userselect("pw_name", 0, domain))) return nomatch ? 0 : -1;
  while ((row = f.fetch(r)))
    if (row[0]) fn(row[0], ctx);
  f.freeres(r);
  if (!stralloc_copys(&q, "SELECT DISTINCT alias FROM valias WHERE domain=") || !catesc(&q, domain))
    return fail("out of memory");
  if (!(r = run(&e))) return e == ER_NO_SUCH_TABLE ? 0 : fail("query");
  while ((row = f.fetch(r)))
    if (row[0]) fn(row[0], ctx);
  f.freeres(r);
  return 0;
}

int valsql_rules(void (*fn)(const char *scope, const char *text, void *ctx), void *ctx)
{
  MYSQL_RES *r;
  MYSQL_ROW row;
  unsigned e;
  if (connect_db() == -1) return -1;
  if (!stralloc_copys(&q, "SELECT scope, rules FROM mxguard_rules ORDER BY scope")) return fail("out of memory");
  if (!(r = run(&e))) return e == ER_NO_SUCH_TABLE ? 0 : fail("query");
  while ((row = f.fetch(r)))
    if (row[0] && row[1]) fn(row[0], row[1], ctx);
  f.freeres(r);
  return 0;
}
