/* t_addr - addr.c against qmail-smtpd's addrparse (compat §4.5): '<' and '>' handling, the
 * no-'<' form, source routes, quotes and escapes, the 899-byte limit, the localiphost rewrite
 * of our own bracketed IPs, addr_bracketip and addr_domain. */
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "addr.h"
#include "check.h"

#define LIP "lip.example.test"

struct pcase {
  const char *name;
  const char *arg;
  int lip;           /* parse with liphost LIP */
  int ret;
  const char *want;  /* 0: do not compare */
};

static const struct pcase pcases[] = {
  /* rule 1: the first '<', up to an unquoted unescaped '>' */
  {"lt_basic", "FROM:<a@x.test>", 0, ADDR_OK, "a@x.test"},
  {"lt_first", "FROM:x<a@b.test><c@d.test>", 0, ADDR_OK, "a@b.test"},
  {"lt_noterm", "FROM:<a@x.test", 0, ADDR_OK, "a@x.test"},
  {"lt_params", "FROM:<a@x.test> SIZE=10 BODY=8BITMIME", 0, ADDR_OK, "a@x.test"},
  {"lt_nokeyword", "<a@x.test>", 0, ADDR_OK, "a@x.test"},
  {"lt_empty", "FROM:<>", 0, ADDR_OK, ""},
  {"lt_space_inside", "TO:<a b@x.test>", 0, ADDR_OK, "a b@x.test"},
  {"lt_space_before", "FROM: <a@x.test>", 0, ADDR_OK, "a@x.test"},
  {"lt_beats_colon", "FROM:zz <q@x.test>", 0, ADDR_OK, "q@x.test"},
  {"lt_in_quotes_still_first", "FROM:\"<\"a@x>", 0, ADDR_OK, "a@x>"},
  /* rule 2: no '<': after the first ':', spaces skipped, up to an unquoted space */
  {"nolt_colon", "FROM:a@x.test", 0, ADDR_OK, "a@x.test"},
  {"nolt_space_param", "FROM: a@x.test SIZE=10", 0, ADDR_OK, "a@x.test"},
  {"nolt_many_spaces", "FROM:    a@x.test", 0, ADDR_OK, "a@x.test"},
  {"nolt_xyz_is_null", "xyz", 0, ADDR_OK, ""},
  {"nolt_empty_arg", "", 0, ADDR_OK, ""},
  {"nolt_colon_only", "TO:", 0, ADDR_OK, ""},
  {"nolt_first_colon", "FROM:a:b@x c", 0, ADDR_OK, "a:b@x"},
  {"nolt_gt_kept", "FROM:a>b@x", 0, ADDR_OK, "a>b@x"},
  {"nolt_tab_kept", "FROM:a\tb@x y", 0, ADDR_OK, "a\tb@x"},
  {"nolt_quoted_space", "FROM: \"a b\"@x.test c", 0, ADDR_OK, "a b@x.test"},
  {"nolt_escaped_space", "FROM: a\\ b@x.test c", 0, ADDR_OK, "a b@x.test"},
  /* rule 3: source route */
  {"route_two_hops", "TO:<@hop1,@hop2:a@x.test>", 0, ADDR_OK, "a@x.test"},
  {"route_one_hop", "TO:<@hop1:a@x.test>", 0, ADDR_OK, "a@x.test"},
  {"route_no_colon", "TO:<@hop1>", 0, ADDR_OK, ""},
  {"route_nolt", "TO: @h:a@x.test more", 0, ADDR_OK, "a@x.test"},
  {"route_not_at_start", "TO:<a@h:b@x>", 0, ADDR_OK, "a@h:b@x"},
  /* rule 4: quotes removed, backslash escapes, everything else passes */
  {"quotes_removed", "FROM:<\"quoted local\"@x.test>", 0, ADDR_OK, "quoted local@x.test"},
  {"quoted_gt", "FROM:<\"a>b\"@x.test>", 0, ADDR_OK, "a>b@x.test"},
  {"escaped_gt", "FROM:<a\\>b@x.test>", 0, ADDR_OK, "a>b@x.test"},
  {"escaped_quote", "FROM:<a\\\"b@x.test>", 0, ADDR_OK, "a\"b@x.test"},
  {"escaped_backslash", "FROM:<a\\\\b@x.test>", 0, ADDR_OK, "a\\b@x.test"},
  {"trailing_backslash", "FROM:<ab\\", 0, ADDR_OK, "ab"},
  {"unbalanced_quote", "FROM:<\"a>b@x", 0, ADDR_OK, "a>b@x"},
  {"8bit_passes", "FROM:<\xe9t\xe9@\xff.test>", 0, ADDR_OK, "\xe9t\xe9@\xff.test"},
  {"hash_at_brackets", "FROM:<#@[]>", 0, ADDR_OK, "#@[]"},
  {"hash_at_brackets_lip", "FROM:<#@[]>", 1, ADDR_OK, "#@[]"},
  {"case_kept", "TO:<qtest@EXAMPLE.TEST>", 0, ADDR_OK, "qtest@EXAMPLE.TEST"},
  {"percent_bang", "TO:<u%remote.test!x@example.test>", 0, ADDR_OK, "u%remote.test!x@example.test"},
  {"cr_passes", "TO:<a\rb@x>", 0, ADDR_OK, "a\rb@x"},
  /* rule 5: localiphost */
  {"lip_127", "TO:<box@[127.0.0.1]>", 1, ADDR_OK, "box@" LIP},
  {"lip_leading_zeros", "TO:<box@[127.000.000.001]>", 1, ADDR_OK, "box@" LIP},
  {"lip_0000", "TO:<box@[0.0.0.0]>", 1, ADDR_OK, "box@" LIP},
  {"lip_mod256", "TO:<box@[383.0.0.1]>", 1, ADDR_OK, "box@" LIP},  /* qmail's ip_scan */
  {"lip_trailing_x", "TO:<box@[127.0.0.1]x>", 1, ADDR_OK, "box@[127.0.0.1]x"},
  {"lip_three_octets", "TO:<box@[1.2.3]>", 1, ADDR_OK, "box@[1.2.3]"},
  {"lip_three_octets_local", "TO:<box@[127.0.0]>", 1, ADDR_OK, "box@[127.0.0]"},
  {"lip_five_octets", "TO:<box@[127.0.0.1.5]>", 1, ADDR_OK, "box@[127.0.0.1.5]"},
  {"lip_letters", "TO:<box@[a.b.c.d]>", 1, ADDR_OK, "box@[a.b.c.d]"},
  {"lip_unclosed", "TO:<box@[127.0.0.1>", 1, ADDR_OK, "box@[127.0.0.1"},
  {"lip_no_bracket", "TO:<box@127.0.0.1>", 1, ADDR_OK, "box@127.0.0.1"},
  {"lip_space", "TO:<box@[127.0.0.1 ]>", 1, ADDR_OK, "box@[127.0.0.1 ]"},
  {"lip_not_last_at", "TO:<a@[127.0.0.1]@x.test>", 1, ADDR_OK, "a@[127.0.0.1]@x.test"},
  {"lip_last_at", "TO:<a@x.test@[127.0.0.1]>", 1, ADDR_OK, "a@x.test@" LIP},
  {"lip_no_local_part", "TO:<@[127.0.0.1]>", 1, ADDR_OK, ""},  /* a source route... */
  {"lip_empty_local", "TO:\"\"@[127.0.0.1]", 1, ADDR_OK, "@" LIP},
  {"lip_noat", "TO:<[127.0.0.1]>", 1, ADDR_OK, "[127.0.0.1]"},
  {"lip_mail_form", "FROM: box@[0.0.0.0] SIZE=1", 1, ADDR_OK, "box@" LIP},
  {"nolip_127", "TO:<box@[127.0.0.1]>", 0, ADDR_OK, "box@[127.0.0.1]"},
  {"nolip_0000", "TO:<box@[0.0.0.0]>", 0, ADDR_OK, "box@[0.0.0.0]"},
  {0, 0, 0, 0, 0}
};

static stralloc lip;

static void parse_case(const char *name, const char *arg, int uselip, int wret, const char *want,
                       size_t wantlen)
{
  static stralloc a;
  char n[200];
  int r = addr_parse(&a, arg, uselip ? &lip : 0);
  snprintf(n, sizeof n, "addr_parse %s", name);
  if (r != wret)
    check(0, n, "return %d, want %d (arg %s)", r, wret, check_esc(arg, strlen(arg)));
  else if ((r == ADDR_OK || r == ADDR_TOOLONG) && a.s[a.len] != 0)
    check(0, n, "not NUL-terminated");
  else if (want)
    check_bytes(n, a.s, a.len, want, wantlen);
  else
    check(1, n, "%s", "");
}

/* myip - a non-loopback IPv4 address of this host (for a rewrite that is not 127/8) */
static int myip(unsigned char ip[4])
{
  struct ifaddrs *ifa, *x;
  int found = 0;
  if (getifaddrs(&ifa) == -1) return 0;
  for (x = ifa; x && !found; x = x->ifa_next)
    if (x->ifa_addr && x->ifa_addr->sa_family == AF_INET) {
      memcpy(ip, &((struct sockaddr_in *)x->ifa_addr)->sin_addr, 4);
      if (ip[0] != 127) found = 1;
    }
  freeifaddrs(ifa);
  return found;
}

static int islocal(const unsigned char want[4])
{
  struct ifaddrs *ifa, *x;
  int found = 0;
  if (getifaddrs(&ifa) == -1) return 0;
  for (x = ifa; x; x = x->ifa_next)
    if (x->ifa_addr && x->ifa_addr->sa_family == AF_INET &&
        !memcmp(want, &((struct sockaddr_in *)x->ifa_addr)->sin_addr, 4))
      found = 1;
  freeifaddrs(ifa);
  return found;
}

static void ip_cases(void)
{
  static const unsigned char others[][4] = {{192, 0, 2, 1}, {203, 0, 113, 254}, {198, 51, 100, 7}};
  unsigned char ip[4];
  char arg[100], want[100], name[100];
  size_t i;
  for (i = 0; i < sizeof others / sizeof others[0]; ++i) {
    const unsigned char *o = others[i];
    snprintf(arg, sizeof arg, "TO:<box@[%u.%u.%u.%u]>", o[0], o[1], o[2], o[3]);
    snprintf(name, sizeof name, "nonlocal_%u.%u.%u.%u", o[0], o[1], o[2], o[3]);
    /* expected from our own interface list, in case this host really has that address */
    if (islocal(o)) snprintf(want, sizeof want, "box@" LIP);
    else snprintf(want, sizeof want, "box@[%u.%u.%u.%u]", o[0], o[1], o[2], o[3]);
    parse_case(name, arg, 1, ADDR_OK, want, strlen(want));
  }
  if (check(myip(ip), "addr_parse fixture_has_nonloopback_ip", "no non-loopback IPv4 address")) {
    snprintf(arg, sizeof arg, "TO:<box@[%u.%u.%u.%u]>", ip[0], ip[1], ip[2], ip[3]);
    parse_case("lip_interface_address", arg, 1, ADDR_OK, "box@" LIP, strlen("box@" LIP));
  }
}

static void length_cases(void)
{
  static char arg[8000], want[4000];
  size_t n;
  /* 899 bytes pass, 900 are too long; counted after quotes and escapes are removed */
  for (n = 897; n <= 902; ++n) {
    char name[64];
    memset(want, 'a', n);
    memcpy(want + n - 7, "@x.test", 7);
    want[n] = 0;
    snprintf(arg, sizeof arg, "TO:<%s>", want);
    snprintf(name, sizeof name, "len_%zu", n);
    parse_case(name, arg, 0, n <= ADDR_MAX ? ADDR_OK : ADDR_TOOLONG, n <= ADDR_MAX ? want : 0, n);
  }
  /* quotes do not count: 899 bytes of address in 901 bytes of argument */
  memset(want, 'b', 899);
  want[899] = 0;
  snprintf(arg, sizeof arg, "TO:<\"%s\">", want);
  parse_case("len_899_quoted", arg, 0, ADDR_OK, want, 899);
  /* escapes do not count either */
  snprintf(arg, sizeof arg, "TO:<\\%s>", want);
  parse_case("len_899_escaped", arg, 0, ADDR_OK, want, 899);
  snprintf(arg, sizeof arg, "TO:<\\\\%s>", want);
  parse_case("len_900_escaped_backslash", arg, 0, ADDR_TOOLONG, 0, 0);
  /* the limit is checked after the localiphost rewrite (as qmail does) */
  memset(want, 'c', 895);
  want[895] = 0;
  snprintf(arg, sizeof arg, "TO:<%s@[127.0.0.1]>", want);  /* 907 bytes before the rewrite */
  {
    static stralloc shortlip;
    static stralloc a;
    int r;
    stralloc_copys(&shortlip, "x.y");
    r = addr_parse(&a, arg, &shortlip);
    check(r == ADDR_OK && a.len == 899, "addr_parse len_checked_after_rewrite",
          "return %d len %zu, want %d len 899", r, a.len, ADDR_OK);
    r = addr_parse(&a, arg, 0);
    check(r == ADDR_TOOLONG, "addr_parse len_907_without_liphost", "return %d", r);
  }
  /* a long liphost makes a short address too long */
  {
    static stralloc longlip;
    static stralloc a;
    int r;
    memset(want, 'h', 895);
    stralloc_copyb(&longlip, want, 895);
    r = addr_parse(&a, "TO:<abcd@[127.0.0.1]>", &longlip);
    check(r == ADDR_TOOLONG, "addr_parse len_liphost_makes_toolong", "return %d len %zu", r, a.len);
  }
  /* a very long argument, no terminator */
  {
    static char big[100000];
    static stralloc a;
    int r;
    memset(big, 'z', sizeof big - 1);
    big[0] = '<';
    r = addr_parse(&a, big, &lip);
    check(r == ADDR_TOOLONG && a.len == sizeof big - 2, "addr_parse len_100k", "return %d len %zu", r,
          a.len);
  }
}

struct bcase {
  const char *s;
  int ret;
  unsigned char ip[4];
};

static const struct bcase bcases[] = {
  {"[1.2.3.4]", 1, {1, 2, 3, 4}},
  {"[127.000.000.001]", 1, {127, 0, 0, 1}},
  {"[0.0.0.0]", 1, {0, 0, 0, 0}},
  {"[255.255.255.255]", 1, {255, 255, 255, 255}},
  {"[256.1.1.257]", 1, {0, 1, 1, 1}},
  {"[1.2.3.4]x", 0, {0}},
  {"[1.2.3.4", 0, {0}},
  {"[1.2.3]", 0, {0}},
  {"[1.2.3.4.5]", 0, {0}},
  {"[1..2.3]", 0, {0}},
  {"[.1.2.3]", 0, {0}},
  {"[a.b.c.d]", 0, {0}},
  {"[]", 0, {0}},
  {"[", 0, {0}},
  {"", 0, {0}},
  {"1.2.3.4", 0, {0}},
  {"[ 1.2.3.4]", 0, {0}},
  {"[1.2.3.4 ]", 0, {0}},
  {"[-1.2.3.4]", 0, {0}},
  {"[+1.2.3.4]", 0, {0}},
  {"[1.2.3.4]]", 0, {0}},
  {"[IPv6:::1]", 0, {0}},
  {0, 0, {0}}
};

static void bracket_cases(void)
{
  const struct bcase *c;
  for (c = bcases; c->s; ++c) {
    unsigned char ip[4] = {9, 9, 9, 9};
    char n[100];
    int r = addr_bracketip(c->s, ip);
    snprintf(n, sizeof n, "addr_bracketip %s", check_esc(c->s, strlen(c->s)));
    if (c->ret)
      check(r == 1 && !memcmp(ip, c->ip, 4), n, "return %d ip %u.%u.%u.%u", r, ip[0], ip[1], ip[2],
            ip[3]);
    else
      check(r == 0, n, "return %d, want 0", r);
  }
}

static void ipme_cases(void)
{
  unsigned char ip[4] = {0, 0, 0, 0};
  check(addr_ipme(ip) == 1, "addr_ipme 0.0.0.0", "not ours");
  ip[0] = 127; ip[3] = 1;
  check(addr_ipme(ip) == 1, "addr_ipme 127.0.0.1", "not ours");
  ip[0] = 203; ip[1] = 0; ip[2] = 113; ip[3] = 254;
  check(addr_ipme(ip) == islocal(ip), "addr_ipme 203.0.113.254", "disagrees with getifaddrs");
  if (myip(ip)) check(addr_ipme(ip) == 1, "addr_ipme interface_address", "not ours");
}

struct dcase {
  const char *s;
  size_t len;
  int off;  /* where the domain starts; -1: no @ */
};

static const struct dcase dcases[] = {
  {"a@b.test", 8, 2},
  {"a@b@c.test", 10, 4},
  {"abc", 3, -1},
  {"", 0, -1},
  {"a@", 2, 2},
  {"@", 1, 1},
  {"@x", 2, 1},
  {"a@b", 1, -1},     /* only len bytes count */
  {"a@b@c", 3, 2},    /* the last @ within len */
  {"a\0@b", 4, 3},    /* a NUL does not stop the scan */
  {0, 0, 0}
};

static void domain_cases(void)
{
  const struct dcase *c;
  int i = 0;
  for (c = dcases; c->s; ++c, ++i) {
    char n[100];
    const char *d = addr_domain(c->s, c->len);
    snprintf(n, sizeof n, "addr_domain %d %s", i, check_esc(c->s, c->len));
    if (c->off < 0) check(d == 0, n, "got offset %ld, want none", (long)(d - c->s));
    else check(d == c->s + c->off, n, "got offset %ld, want %d", d ? (long)(d - c->s) : -1L, c->off);
  }
}

/* the rewrite after the stralloc grew: for every length, a fresh stralloc each time, so that
 * for some length the NUL added before the bracket check makes the stralloc move (under ASan
 * a stale pointer into the old block is a heap-use-after-free) */
static void realloc_cases(void)
{
  static char arg[1000], want[1000];
  size_t l, bad = 0;
  for (l = 1; l < 400 && !bad; ++l) {
    stralloc a = {0};
    int r;
    memset(want, 'u', l);
    snprintf(want + l, sizeof want - l, "@" LIP);
    snprintf(arg, sizeof arg, "TO:<%.*s@[127.0.0.1]>", (int)l, want);
    r = addr_parse(&a, arg, &lip);
    if (r != ADDR_OK || a.len != strlen(want) || memcmp(a.s, want, a.len)) bad = l;
    stralloc_free(&a);
  }
  check(!bad, "addr_parse rewrite_after_realloc", "local part of %zu bytes: wrong result", bad);
}

int main(void)
{
  const struct pcase *c;
  stralloc_copys(&lip, LIP);
  for (c = pcases; c->name; ++c) parse_case(c->name, c->arg, c->lip, c->ret, c->want,
                                            c->want ? strlen(c->want) : 0);
  ip_cases();
  length_cases();
  bracket_cases();
  ipme_cases();
  domain_cases();
  /* the same stralloc reused: a shorter result after a longer one */
  {
    static stralloc a;
    addr_parse(&a, "TO:<aaaaaaaaaaaaaaaa@x.test>", 0);
    addr_parse(&a, "TO:<b@y>", 0);
    check_bytes("addr_parse reuse_shorter", a.s, a.len, "b@y", 3);
  }
  realloc_cases();  /* last: under ASan a failure here ends the program */
  return check_done();
}
