/* t_dnsbl - dnsbl.c's pure parts: postscreen zone lines and filters, reversed names for
 * IPv4 and IPv6 (nibbles), the escaping of list texts. The lookups themselves are tested
 * end to end against dnsmasq in tests/integration/test_dnsbl.py. */
#include "check.h"
#include "../dnsbl.h"

static void zone(const char *line, int ok, const char *name, int weight, int filtered)
{
  struct dnsbl_zone z;
  int r = dnsbl_parse_zone(line, &z);
  if (!ok) { check(r == -1, line, "accepted a bad line"); return; }
  check(r == 0 && !strcmp(z.name, name) && z.weight == weight && z.filtered == filtered, line,
        "r=%d name=%s weight=%d filtered=%d", r, r ? "-" : z.name, z.weight, z.filtered);
  if (!r) free(z.name);
}

static void match(const char *line, int a, int b, int c, int d, int want)
{
  struct dnsbl_zone z;
  unsigned char ip[4];
  char name[128];
  ip[0] = (unsigned char)a; ip[1] = (unsigned char)b; ip[2] = (unsigned char)c; ip[3] = (unsigned char)d;
  snprintf(name, sizeof name, "match %s %d.%d.%d.%d", line, a, b, c, d);
  if (dnsbl_parse_zone(line, &z)) { check(0, name, "parse failed"); return; }
  check(dnsbl_match(&z, ip) == want, name, "want %d", want);
  free(z.name);
}

static void rev(const char *ip, const char *suffix, const char *want)
{
  char out[128], name[160];
  int r = dnsbl_revname(out, sizeof out, ip, suffix);
  snprintf(name, sizeof name, "revname %s %s", ip, suffix ? suffix : "arpa");
  if (!want) { check(r == -1, name, "got %s", r < 0 ? "-" : out); return; }
  check(r > 0 && !strcmp(out, want), name, "got %s", r < 0 ? "-1" : out);
}

int main(void)
{
  char out[16];
  size_t n;
  zone("zen.example", 1, "zen.example", 1, 0);
  zone("zen.example.", 1, "zen.example", 1, 0);
  zone("bl.test=127.0.0.[2..11]", 1, "bl.test", 1, 1);
  zone("bl.test*3", 1, "bl.test", 3, 0);
  zone("wl.test=127.0.[0..255].[1;2;3]*-4", 1, "wl.test", -4, 1);
  zone("bl.test=127.0.0", 0, 0, 0, 0);
  zone("bl.test=127.0.0.[3..2]", 0, 0, 0, 0);
  zone("bl.test=127.0.0.256", 0, 0, 0, 0);
  zone("bl.test*x", 0, 0, 0, 0);
  zone("bl.test*0", 0, 0, 0, 0);
  zone("=127.0.0.2", 0, 0, 0, 0);
  zone("bl.test junk", 0, 0, 0, 0);
  zone("...", 0, 0, 0, 0);
  match("bl.test", 127, 0, 0, 2, 1);
  match("bl.test", 10, 0, 0, 2, 0);
  match("bl.test=127.0.0.[2..11]", 127, 0, 0, 11, 1);
  match("bl.test=127.0.0.[2..11]", 127, 0, 0, 12, 0);
  match("bl.test=127.0.0.[2..11]", 127, 0, 0, 1, 0);
  match("bl.test=127.0.0.[2;4]", 127, 0, 0, 4, 1);
  match("bl.test=127.0.0.[2;4]", 127, 0, 0, 3, 0);
  match("bl.test=127.0.0.[2;4..6]", 127, 0, 0, 5, 1);
  match("bl.test=127.0.[0..255].2", 127, 0, 9, 2, 1);
  rev("192.0.2.10", "bl.test", "10.2.0.192.bl.test");
  rev("192.0.2.10", 0, "10.2.0.192.in-addr.arpa");
  rev("::ffff:192.0.2.10", "bl.test", "10.2.0.192.bl.test");
  rev("2001:db8::10", "bl.test",
      "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test");
  rev("2001:db8::10", 0, "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
  rev("unknown", "bl.test", 0);
  rev("1.2.3", "bl.test", 0);
  n = dnsbl_escape(out, sizeof out, "a\r\nb\x01\xff%c", 8);
  check(n == 8 && !strcmp(out, "a??b??%c"), "escape", "got %s", out);
  n = dnsbl_escape(out, sizeof out, "0123456789abcdefghij", 20);
  check(n == 15 && !strcmp(out, "0123456789abcde"), "escape cap", "got %zu %s", n, out);
  return check_done();
}
