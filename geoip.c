/* geoip.c - the country of the client (or of a sender domain's MX) for the rules engine's
 * country conditions. Reads the first line of control/geoipdb: the path of a MaxMind GeoIP2/
 * GeoLite2 or DB-IP country (or city) .mmdb file, relative to the qmail home unless absolute.
 * No control/geoipdb (or an empty first line): no GeoIP, every answer is 0 "unknown" and the
 * library is never loaded. libmaxminddb is loaded with dlopen(GEOIP_LIB) and the database
 * opened (MMDB_open, mmap) at the first question, once per process; nothing happens at
 * start-up, so a session whose rules never ask about a country pays nothing. The country is
 * the record's country/iso_code, else registered_country/iso_code (an anycast or satellite
 * network may have only the latter). A corrupt record answers -1 for that address only. When
 * the library is missing or the database cannot be opened or is corrupt, every question of the
 * process answers -1 and geoip_error() says why: the caller defers (451) or treats the country
 * as unknown, never refuses for good. An ip that is not an address has no country (0). */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <stralloc.h>
#include <maxminddb.h>
#include "control.h"
#include "geoip.h"

static struct {
  int (*open)(const char *, uint32_t, MMDB_s *);
  MMDB_lookup_result_s (*lookup)(const MMDB_s *, const char *, int *, int *);
  int (*get_value)(MMDB_entry_s *, MMDB_entry_data_s *, ...);
  void (*close)(MMDB_s *);
  const char *(*strerror)(int);
} f;

static void *lib;
static MMDB_s db;
static int state;   /* 0 not tried, 1 open, 2 not configured, -1 failed for this process */
static const char *err = "";
static char errbuf[300];
static stralloc path;

int geoip_loaded(void) { return lib != 0; }
const char *geoip_error(void) { return err; }

void geoip_reset(void)
{
  if (state == 1) f.close(&db);
  state = 0;
  err = "";
}

/* bad - remember why (what, then the path and the library's or the system's text): -1 */
static int bad(const char *what, const char *detail)
{
  snprintf(errbuf, sizeof errbuf, "%s %s%s%s", what, path.len ? path.s : GEOIP_CONTROL,
           detail ? ": " : "", detail ? detail : "");
  err = errbuf;
  return -1;
}

/* fail - as bad, and every later question of the process is -1 too (no database) */
static int fail(const char *what, const char *detail)
{
  bad(what, detail);
  return state = -1;
}

/* load - the library and exactly the functions this file calls */
static int load(void)
{
  if (lib) return 0;
  if (!(lib = dlopen(GEOIP_LIB, RTLD_NOW | RTLD_LOCAL))) return -1;
#define SYM(field, name) if (!(*(void **)&f.field = dlsym(lib, name))) goto bad
  SYM(open, "MMDB_open"); SYM(lookup, "MMDB_lookup_string"); SYM(get_value, "MMDB_get_value");
  SYM(close, "MMDB_close"); SYM(strerror, "MMDB_strerror");
#undef SYM
  return 0;
bad:
  dlclose(lib);
  lib = 0;
  return -1;
}

/* opendb - read control/geoipdb, load the library, open the database; state says the result */
static int opendb(void)
{
  int r;
  if (state) return state;
  path.len = 0;
  r = control_readline(&path, GEOIP_CONTROL);
  if (r == -1) { path.len = 0; return fail("cannot read", strerror(errno)); }
  if (r == 0 || path.len == 0) {
    err = r ? GEOIP_CONTROL " is empty: no GeoIP" : "no " GEOIP_CONTROL ": no GeoIP";
    return state = 2;
  }
  if (!stralloc_0(&path)) { path.len = 0; return fail("out of memory reading", 0); }
  if (load() == -1) return fail("cannot load " GEOIP_LIB " for", 0);
  r = f.open(path.s, MMDB_MODE_MMAP, &db);
  /* the library runs on its own copy of libc (dlopen from a static program): its errno is not
   * ours, so ask the file system ourselves why the file does not open */
  if (r == MMDB_FILE_OPEN_ERROR && access(path.s, R_OK) == -1)
    return fail("cannot open", strerror(errno));
  if (r != MMDB_SUCCESS) return fail("cannot open", f.strerror(r));
  err = "";
  return state = 1;
}

int geoip_available(void)
{
  return opendb() == 1;
}

/* iso - entry's value at key/iso_code as two uppercase letters: 1, 0 absent or odd, -1 corrupt */
static int iso(MMDB_entry_s *entry, const char *key, char cc[3])
{
  MMDB_entry_data_s d;
  const char *s;
  int r = f.get_value(entry, &d, key, "iso_code", (const char *)0);
  if (r == MMDB_LOOKUP_PATH_DOES_NOT_MATCH_DATA_ERROR) return 0;
  if (r != MMDB_SUCCESS) return bad("bad record in", f.strerror(r));
  if (!d.has_data || d.type != MMDB_DATA_TYPE_UTF8_STRING || d.data_size != 2) return 0;
  s = d.utf8_string;
  if (!((s[0] | 32) >= 'a' && (s[0] | 32) <= 'z' && (s[1] | 32) >= 'a' && (s[1] | 32) <= 'z'))
    return 0;
  cc[0] = (char)(s[0] & ~32);
  cc[1] = (char)(s[1] & ~32);
  cc[2] = 0;
  return 1;
}

int geoip_country(const char *ip, char cc[3])
{
  MMDB_lookup_result_s res;
  int gai = 0, e = 0, r;
  cc[0] = 0;
  if (opendb() != 1) return state == 2 ? 0 : -1;
  if (!ip) return 0;
  /* an IPv4 client seen through a v6 socket: look up the IPv4 address itself, a database
   * need not alias ::ffff:0:0/96 (MaxMind's do, a hand-made one may not) */
  if (!strncasecmp(ip, "::ffff:", 7) && strchr(ip + 7, '.') && !strchr(ip + 7, ':')) ip += 7;
  res = f.lookup(&db, ip, &gai, &e);
  if (gai) return 0;  /* not an IP address: no country */
  if (e == MMDB_IPV6_LOOKUP_IN_IPV4_DATABASE_ERROR) return 0;
  if (e != MMDB_SUCCESS) return bad("lookup failed in", f.strerror(e));
  if (!res.found_entry) return 0;
  r = iso(&res.entry, "country", cc);
  if (r == 0) r = iso(&res.entry, "registered_country", cc);
  return r;
}
