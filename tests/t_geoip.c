/* t_geoip - geoip.c against a real .mmdb written at test time by tests/mkmmdb.pl (Debian's
 * libmaxmind-db-writer-perl): v4 and v6 lookups, the registered_country fallback, odd records,
 * unlisted addresses, no or empty control/geoipdb, corrupt, truncated and missing databases;
 * and, through /proc/self/maps, that libmaxminddb is mapped only once a question needs it
 * (never at start-up, never when no database is configured). Linked as mxguard-smtpd is
 * (statically, by conf-ld), so the dlopen path is the daemon's. */
#include <limits.h>
#include "check.h"
#include "geoip.h"

static char script[PATH_MAX];

/* mapped - does this process map libmaxminddb: 1, 0; -1 when /proc/self/maps is unreadable */
static int mapped(void)
{
  size_t len;
  char *s = check_readfile("/proc/self/maps", &len);
  int r;
  if (!s) return -1;
  r = strstr(s, "libmaxminddb") != 0;
  free(s);
  return r;
}

/* ask - one lookup case: the answer and the country */
static const char *label = "";

static void ask(const char *name, const char *ip, int want, const char *wantcc)
{
  char cc[3] = "??";
  int r = geoip_country(ip, cc);
  char n[200];
  snprintf(n, sizeof n, "%s: %s %s", label, name, ip);
  if (check(r == want, n, "got %d (%s), want %d", r, geoip_error(), want) && want == 1) {
    snprintf(n, sizeof n, "%s: %s %s country", label, name, ip);
    check_str(n, cc, wantcc);
  }
}

static void no_database(void)
{
  char cc[3];
  check_long("maps before any question", mapped(), 0);
  check_long("nothing loaded at start", geoip_loaded(), 0);
  check_long("no control/geoipdb: unknown", geoip_country("192.0.2.7", cc), 0);
  check(strstr(geoip_error(), "no control/geoipdb") != 0, "no control/geoipdb: error names it",
        "error %s", geoip_error());
  check_long("no control/geoipdb: not available", geoip_available(), 0);
  check_long("no control/geoipdb: library not loaded", geoip_loaded(), 0);
  check_long("no control/geoipdb: not mapped", mapped(), 0);
  geoip_reset();
  check_writes("control/geoipdb", "\n");
  check_long("empty control/geoipdb: unknown", geoip_country("192.0.2.7", cc), 0);
  check_long("empty control/geoipdb: not mapped", mapped(), 0);
  geoip_reset();
  unlink("control/geoipdb");
  if (mkdir("control/geoipdb", 0755) == 0) {
    check_long("control/geoipdb unreadable: -1", geoip_country("192.0.2.7", cc), -1);
    check_long("control/geoipdb unreadable: not available", geoip_available(), 0);
    rmdir("control/geoipdb");
  }
  geoip_reset();
}

static void lookups(const char *db, const char *lab)
{
  char line[PATH_MAX + 2], n[100];
  label = lab;
  snprintf(line, sizeof line, "%s\n", db);
  check_writes("control/geoipdb", line);
  geoip_reset();
  ask("v4", "192.0.2.7", 1, "DE");
  snprintf(n, sizeof n, "%s: first question loads the library", lab);
  check_long(n, geoip_loaded(), 1);
  snprintf(n, sizeof n, "%s: mapped after the first question", lab);
  check_long(n, mapped(), 1);
  ask("v4 lower-case iso_code", "198.51.100.200", 1, "US");
  ask("v4 registered_country only", "203.0.113.5", 1, "FR");
  ask("v4 record without iso_code", "203.0.113.200", 0, 0);
  ask("v4 iso_code not two letters", "100.64.1.1", 0, 0);
  ask("v4 unlisted", "8.8.8.8", 0, 0);
  ask("v4 unlisted neighbour", "192.0.3.1", 0, 0);
  ask("v4-mapped v6", "::ffff:192.0.2.9", 1, "DE");
  ask("v6", "2001:db8::1", 1, "JP");
  ask("v6 upper case", "2001:DB8:FFFF::25", 1, "JP");
  ask("v6 more specific", "2001:db8:1::5", 1, "CH");
  ask("v6 unlisted", "2001:db9::1", 0, 0);
  ask("not an address", "mail.example.com", 0, 0);
  ask("empty", "", 0, 0);
  ask("v4 with junk", "192.0.2.7x", 0, 0);
  snprintf(n, sizeof n, "%s: available", lab);
  check_long(n, geoip_available(), 1);
}

static void broken(const char *name, const char *body, size_t len)
{
  char cc[3], n[100];
  check_writes("control/geoipdb", "bad.mmdb\n");
  if (body) { if (check_write("bad.mmdb", body, len, 0644)) return; } else unlink("bad.mmdb");
  geoip_reset();
  snprintf(n, sizeof n, "%s: -1", name);
  check_long(n, geoip_country("192.0.2.7", cc), -1);
  snprintf(n, sizeof n, "%s: error names the file (%s)", name, geoip_error());
  check(strstr(geoip_error(), "bad.mmdb") != 0, n, "error %s", geoip_error());
  snprintf(n, sizeof n, "%s: later questions -1 too", name);
  check_long(n, geoip_country("2001:db8::1", cc), -1);
  snprintf(n, sizeof n, "%s: not available", name);
  check_long(n, geoip_available(), 0);
}

int main(void)
{
  char cmd[PATH_MAX * 2 + 40], abs[PATH_MAX + 20], *good;
  size_t len;
  if (!realpath("mkmmdb.pl", script)) {
    check(0, "fixture", "tests/mkmmdb.pl not found (run from tests/): %s", strerror(errno));
    return check_done();
  }
  check_tmpdir("geoip");
  if (mkdir("control", 0755) == -1) { check(0, "fixture", "mkdir control"); return check_done(); }
  no_database();
  snprintf(cmd, sizeof cmd, "perl '%s' geo.mmdb", script);
  if (!check(system(cmd) == 0, "fixture: mkmmdb.pl writes geo.mmdb",
             "needs libmaxmind-db-writer-perl (install-deps)"))
    return check_done();
  lookups("geo.mmdb", "relative path");
  snprintf(abs, sizeof abs, "%s/geo.mmdb", check_dir);
  lookups(abs, "absolute path");
  snprintf(cmd, sizeof cmd, "perl '%s' geo4.mmdb 4", script);
  if (check(system(cmd) == 0, "fixture: mkmmdb.pl writes the IPv4-only geo4.mmdb", "failed")) {
    check_writes("control/geoipdb", "geo4.mmdb\n");
    geoip_reset();
    label = "IPv4-only database";
    ask("v4", "192.0.2.7", 1, "DE");
    ask("v6 has no country", "2001:db8::1", 0, 0);
    ask("v4-mapped v6", "::ffff:198.51.100.7", 1, "US");
  }
  good = check_readfile("geo.mmdb", &len);
  if (!check(good != 0, "fixture: read geo.mmdb", "%s", strerror(errno))) return check_done();
  broken("garbage", "this is not a MaxMind DB file\n", 30);
  broken("empty file", "", 0);
  broken("truncated", good, len / 2);
  broken("tail missing", good, len - 20);
  broken("missing file", 0, 0);
  free(good);
  return check_done();
}
