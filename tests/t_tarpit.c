/* t_tarpit - tarpit.c's parsers: durations and "N/T" rates, the client network of a rate or
 * greylist key (IPv4 /24, IPv6 /64), postgrey's sender normalising (BATV, +ext, VERP) */
#include "tarpit.h"
#include "check.h"

int main(void)
{
  long l = 0, w = 0;
  char b[128];
  check_long("ms: plain seconds", tarpit_parse_ms("5", 1000), 5000);
  check_long("ms: 1500ms", tarpit_parse_ms("1500ms", 1000), 1500);
  check_long("ms: 2m", tarpit_parse_ms("2m", 1000), 120000);
  check_long("ms: a word is bad, not 0", tarpit_parse_ms("medium", 1000), -1);
  check_long("ms: empty is bad", tarpit_parse_ms("", 1000), -1);
  check_long("ms: overflow is bad", tarpit_parse_ms("99999999999999", 1000), -1);
  check(tarpit_parse_rate("100/1h", &l, &w) == 0 && l == 100 && w == 3600, "rate 100/1h",
        "%ld/%ld", l, w);
  check(tarpit_parse_rate("5/60", &l, &w) == 0 && l == 5 && w == 60, "rate 5/60", "%ld/%ld", l, w);
  check(tarpit_parse_rate("5", &l, &w) == -1, "rate without window is bad", "%s", "");
  check(tarpit_parse_rate("0/60", &l, &w) == -1, "rate 0 is bad", "%s", "");
  check(tarpit_parse_rate("x/60", &l, &w) == -1, "rate word is bad", "%s", "");
  check(tarpit_net(b, sizeof b, "192.0.2.77", 24, 64) == 0 && !strcmp(b, "192.0.2.0/24"), "net v4 /24",
        "%s", b);
  check(tarpit_net(b, sizeof b, "192.0.2.77", 32, 64) == 0 && !strcmp(b, "192.0.2.77"), "net v4 /32",
        "%s", b);
  check(tarpit_net(b, sizeof b, "2001:db8:1:2:3:4:5:6", 32, 64) == 0 && !strcmp(b, "2001:db8:1:2::/64"),
        "net v6 /64", "%s", b);
  check(tarpit_net(b, sizeof b, "not an ip", 32, 64) == -1, "net: garbage", "%s", b);
  tarpit_grey_sender(b, sizeof b, "prvs=1234abcd=User+tag@Example.COM");
  check_str("grey sender: BATV and +ext", b, "user@example.com");
  tarpit_grey_sender(b, sizeof b, "bounce-12345-67@lists.example");
  check_str("grey sender: VERP digits", b, "bounce-#-#@lists.example");
  tarpit_grey_sender(b, sizeof b, "");
  check_str("grey sender: null sender", b, "");
  return check_done();
}
