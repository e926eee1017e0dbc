/* addr.c - parses the address out of a MAIL or RCPT argument exactly as qmail-smtpd does:
 * after the first '<' up to an unquoted '>' (or, without '<', after the first ':' up to an
 * unquoted space), source route dropped, quotes removed, backslash escapes honoured, and
 * "box@[d.d.d.d]" for one of our own addresses rewritten to control/localiphost. It checks
 * nothing else (RFC syntax is the rules' business); the only limit is ADDR_MAX bytes.
 * Our IPv4 addresses come from getifaddrs() the first time a bracket literal needs them. */
#include <ifaddrs.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include "addr.h"

const char *addr_domain(const char *addr, size_t len)
{
  const char *at = 0;
  size_t i;
  for (i = 0; i < len; ++i)
    if (addr[i] == '@') at = addr + i;
  return at ? at + 1 : 0;
}

/* scanbyte - qmail's ip_scan component: decimal digits, kept modulo 256 */
static size_t scanbyte(const char *s, unsigned char *b)
{
  unsigned long u = 0;
  size_t i = 0;
  while (s[i] >= '0' && s[i] <= '9') u = u * 10 + (unsigned long)(s[i++] - '0');
  *b = (unsigned char)u;
  return i;
}

int addr_bracketip(const char *s, unsigned char ip[4])
{
  size_t i = 1, n;
  int k;
  if (*s != '[') return 0;
  for (k = 0; k < 4; ++k) {
    if (k) { if (s[i] != '.') return 0; ++i; }
    n = scanbyte(s + i, ip + k);
    if (!n) return 0;
    i += n;
  }
  return s[i] == ']' && !s[i + 1];
}

int addr_ipme(const unsigned char ip[4])
{
  static unsigned char *mine;
  static size_t nmine;
  static int loaded;
  size_t i;
  if (!ip[0] && !ip[1] && !ip[2] && !ip[3]) return 1;
  if (!loaded) {
    struct ifaddrs *ifa, *x;
    static unsigned char space[4 * 64];
    if (getifaddrs(&ifa) == -1) return -1;
    mine = space;
    for (x = ifa; x; x = x->ifa_next)
      if (x->ifa_addr && x->ifa_addr->sa_family == AF_INET && nmine < 64) {
        memcpy(mine + 4 * nmine, &((struct sockaddr_in *)x->ifa_addr)->sin_addr, 4);
        ++nmine;
      }
    freeifaddrs(ifa);
    loaded = 1;
  }
  for (i = 0; i < nmine; ++i)
    if (!memcmp(mine + 4 * i, ip, 4)) return 1;
  return 0;
}

int addr_parse(stralloc *addr, const char *arg, const stralloc *liphost)
{
  char terminator = '>';
  const char *lt = strchr(arg, '<');
  int esc = 0, quoted = 0;
  size_t i;
  if (lt) arg = lt + 1;
  else {
    terminator = ' ';
    arg += strcspn(arg, ":");
    if (*arg == ':') ++arg;
    while (*arg == ' ') ++arg;
  }
  if (*arg == '@')  /* source route */
    while (*arg)
      if (*arg++ == ':') break;
  addr->len = 0;
  for (i = 0; arg[i]; ++i) {
    char ch = arg[i];
    if (esc) esc = 0;
    else if (!quoted && ch == terminator) break;
    else if (ch == '\\') { esc = 1; continue; }
    else if (ch == '"') { quoted = !quoted; continue; }
    if (!stralloc_append(addr, &ch)) return ADDR_NOMEM;
  }
  if (!stralloc_0(addr)) return ADDR_NOMEM;  /* before pointing into it: it may move */
  --addr->len;
  if (liphost) {
    const char *d = addr_domain(addr->s, addr->len);
    unsigned char ip[4];
    if (d && *d == '[' && addr_bracketip(d, ip)) {
      int r = addr_ipme(ip);
      if (r == -1) return ADDR_NOIPME;
      if (r) {
        addr->len = (size_t)(d - addr->s);
        if (!stralloc_cat(addr, liphost)) return ADDR_NOMEM;
      }
    }
  }
  if (!stralloc_0(addr)) return ADDR_NOMEM;
  --addr->len;
  return addr->len > ADDR_MAX ? ADDR_TOOLONG : ADDR_OK;
}
