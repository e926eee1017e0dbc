/* dnsbl.c - what DNS says about the client and the sender, through one c-ares channel per
 * session (c-ares 1.18: ares_init_options with ARES_OPT_SOCK_STATE_CB, poll, ares_process_fd,
 * ares_cancel at the deadline). At connect every client lookup is sent at once - the PTR
 * (ares_query, which tells "no such name" from "could not ask", unlike gethostbyaddr), then the
 * forward A/AAAA of the PTR name(s) (FCrDNS) and the RHSBL of the PTR name, and the A and TXT
 * of every DNSBL/DNSWL zone (control/dnsbl, postscreen syntax) - and the channel's sockets
 * join io.c's poll loop (an io_watch), so the answers arrive while the client talks. MAIL
 * sends the sender domain's MX, A and AAAA (RETURNMXCHECK) and the RHSBL lookups of the
 * sender domain and the HELO name (control/rhsbl). A check waits only for what is still
 * missing, never past the budget (DNSBUDGET ms from when the lookups were sent), then decides,
 * at RCPT (or before the banner with DNSBLGREETING): RBLSMTPD as rblsmtpd does; a DNSWL hit
 * (negative weight) permits and skips every DNS refusal; a score at or over the threshold
 * refuses with the list's TXT (or, in tag-only mode, adds an X-RBL: header); the rDNS
 * switches; RHSBL listings. The sender domain (RETURNMXCHECK, qmail-ldap's: any value is on)
 * is decided at MAIL, with qmail-ldap's replies. Only a definite answer gives 5xx: a list that
 * does not answer in time is skipped and logged (fail-open, unless DNSBLFAILCLOSED), the rDNS
 * and sender checks answer 4xx when DNS failed. Relay and authenticated clients are not
 * checked. With no DNS setting at all, four control files are tried (and are missing), and no
 * channel, socket or lookup is made. The facts go into the session (rdns, fcrdns, rdns_name,
 * dnsbl_score) and one event=dns log line. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <ares.h>
#include <buffer.h>
#include <fmt.h>
#include <stralloc.h>
#include "control.h"
#include "dnsbl.h"
#include "io.h"
#include "log.h"

#define ZONES_MAX 32
#define SOCKS_MAX 16
#define PTR_NAMES 2          /* PTR names given a forward lookup */
#define TXT_MAX 200          /* bytes of a list's TXT in a reply */
#define BUDGET_DEFAULT 5000  /* ms */
#define NAME_MAX_ 300

enum { Q_PENDING, Q_HIT, Q_MISS, Q_NX, Q_FAIL };
enum { K_A, K_TXT, K_PTR, K_FWD, K_MX, K_SA, K_SAAAA, K_RA, K_RTXT, K_XA, K_XTXT };
enum { R_SENDER, R_HELO, R_PTR };  /* what an RHSBL zone is asked about */

struct hit {
  int state;                 /* Q_* of the A lookup */
  unsigned char code[4];
  char txt[TXT_MAX + 1];
};
struct zone {
  struct dnsbl_zone z;
  char *reason;              /* "dnsbl:zone" or "rhsbl:zone", for the log and the summary */
  struct hit h;
};
struct batch {
  int pending, closed, done;
  unsigned gen;
  long long start, deadline, ms;
};
struct query {
  int kind, idx;
  struct batch *b;
  unsigned gen;
};

static struct session *sess;
static struct zone zones[ZONES_MAX], rzones[ZONES_MAX];
static struct hit rh[3][ZONES_MAX];  /* RHSBL answers per target */
static char rhname[3][NAME_MAX_];    /* the names asked about */
static int factptr;  /* the rules engine wants the PTR (1) or FCrDNS (2) as a fact */
static int failclosed, greetmode, tagonly, nrzones, nzones, wantptr, returnmx, active, threshold = 1;
static long budget = BUDGET_DEFAULT;
static const char *rblsmtpd;
static ares_channel ch;
static int chok, watching, inflight;
static struct { ares_socket_t fd; int r, w; } socks[SOCKS_MAX];
static int nsocks;
static struct batch client, sender, extra;  /* extra: other modules' lookups (dnsbl_extra) */
static int family;
static unsigned char ipbytes[16];
static int rhsptr;  /* the RHSBL of TCPREMOTEHOST was asked (no PTR query of our own) */
static int ptrasked, senderon, mxon, ptrstate, nptr, fwdpending, fwdmatch, fwdfail;
static char ptrnames[PTR_NAMES][NAME_MAX_];
static int sstate[3];  /* sender MX, A, AAAA: Q_* */
static char txtbuf[400];  /* decision.h: reply text under 400 bytes */

/* the environment, read in one pass over environ: a getenv() per switch would cost every
 * session (with no DNS configured) more than the rest of this module together */
extern char **environ;
enum { E_RBLONLYHEADER, E_DNSBLTAG, E_DNSBLGREETING, E_RBLSMTPD, E_DNSBLSKIP, E_RHSBLSKIP,
       E_REQUIREFCRDNS, E_REQUIREPTR, E_RETURNMXCHECK, E_DNSBLTHRESHOLD, E_DNSBUDGET,
       E_DNSSERVERS, E_DNSBLFAILCLOSED, E_N };
static const char *const envname[E_N] = {
  "RBLONLYHEADER", "DNSBLTAG", "DNSBLGREETING", "RBLSMTPD", "DNSBLSKIP", "RHSBLSKIP",
  "REQUIREFCRDNS", "REQUIREPTR", "RETURNMXCHECK", "DNSBLTHRESHOLD", "DNSBUDGET", "DNSSERVERS",
  "DNSBLFAILCLOSED"};
static const char *envval[E_N];

static void envscan(void)
{
  char **e;
  int k;
  for (e = environ; e && *e; ++e) {
    const char *v = *e;
    if (v[0] != 'R' && v[0] != 'D') continue;
    for (k = 0; k < E_N; ++k) {
      size_t l = strlen(envname[k]);
      if (!envval[k] && !strncmp(v, envname[k], l) && v[l] == '=') { envval[k] = v + l + 1; break; }
    }
  }
}

static int envon(int k) { return envval[k] && strcmp(envval[k], "0"); }

/* ---- pure helpers (unit-tested) */

/* octet - one octet of a postscreen filter: N, [N..M] or [N;M;...] (also mixed) into set */
static const char *octet(const char *p, unsigned char set[32])
{
  int br = *p == '[';
  memset(set, 0, 32);
  if (br) ++p;
  for (;;) {
    unsigned lo = 0, hi, i;
    if (*p < '0' || *p > '9') return 0;
    while (*p >= '0' && *p <= '9') { lo = lo * 10 + (unsigned)(*p++ - '0'); if (lo > 255) return 0; }
    hi = lo;
    if (br && p[0] == '.' && p[1] == '.') {
      p += 2;
      if (*p < '0' || *p > '9') return 0;
      hi = 0;
      while (*p >= '0' && *p <= '9') { hi = hi * 10 + (unsigned)(*p++ - '0'); if (hi > 255) return 0; }
      if (hi < lo) return 0;
    }
    for (i = lo; i <= hi; ++i) set[i / 8] |= (unsigned char)(1u << (i % 8));
    if (!br) return p;
    if (*p == ';') { ++p; continue; }
    if (*p == ']') return p + 1;
    return 0;
  }
}

/* dnsbl_parse_zone - "zone[=a.b.c.d][*weight]", postscreen's dnsbl_sites syntax */
int dnsbl_parse_zone(const char *line, struct dnsbl_zone *z)
{
  size_t n;
  const char *p;
  memset(z, 0, sizeof *z);
  z->weight = 1;
  while (*line == ' ' || *line == '\t') ++line;
  n = strcspn(line, "=* \t");
  p = line + n;
  if (!n || n > 253) return -1;
  if (*p == '=') {
    int i;
    ++p;
    for (i = 0; i < 4; ++i) {
      if (!(p = octet(p, z->mask[i]))) return -1;
      if (i < 3 && *p++ != '.') return -1;
    }
    z->filtered = 1;
  }
  if (*p == '*') {
    char *e;
    long w = strtol(p + 1, &e, 10);
    if (e == p + 1 || w < -1000 || w > 1000 || w == 0) return -1;
    z->weight = (int)w;
    p = e;
  }
  while (*p == ' ' || *p == '\t') ++p;
  if (*p) return -1;
  if (!(z->name = malloc(n + 1))) return -1;
  memcpy(z->name, line, n);
  z->name[n] = 0;
  while (n && z->name[n - 1] == '.') z->name[--n] = 0;
  if (n) return 0;
  free(z->name);
  z->name = 0;
  return -1;
}

/* dnsbl_match - does a listing answer count: a filter, else anything in 127.0.0.0/8 */
int dnsbl_match(const struct dnsbl_zone *z, const unsigned char a[4])
{
  int i;
  if (!z->filtered) return a[0] == 127;
  for (i = 0; i < 4; ++i)
    if (!(z->mask[i][a[i] / 8] & (1u << (a[i] % 8)))) return 0;
  return 1;
}

static int parseip(const char *ip, unsigned char *b, int *fam)
{
  if (inet_pton(AF_INET, ip, b) == 1) { *fam = AF_INET; return 1; }
  if (inet_pton(AF_INET6, ip, b) != 1) return 0;
  if (!memcmp(b, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12)) {  /* ::ffff:a.b.c.d */
    memmove(b, b + 12, 4);
    *fam = AF_INET;
  } else *fam = AF_INET6;
  return 1;
}

/* dnsbl_revname - the reversed name of ip under suffix (0: in-addr.arpa or ip6.arpa) */
int dnsbl_revname(char *out, size_t size, const char *ip, const char *suffix)
{
  unsigned char b[16];
  int fam, i;
  size_t n = 0, sl;
  static const char hex[] = "0123456789abcdef";
  char tmp[80];
  if (!parseip(ip, b, &fam)) return -1;
  if (fam == AF_INET)
    for (i = 3; i >= 0; --i) {
      unsigned v = b[i];
      if (v >= 100) tmp[n++] = (char)('0' + v / 100);
      if (v >= 10) tmp[n++] = (char)('0' + v / 10 % 10);
      tmp[n++] = (char)('0' + v % 10);
      tmp[n++] = '.';
    }
  else
    for (i = 15; i >= 0; --i) {
      tmp[n++] = hex[b[i] & 15]; tmp[n++] = '.';
      tmp[n++] = hex[b[i] >> 4]; tmp[n++] = '.';
    }
  if (!suffix) suffix = fam == AF_INET ? "in-addr.arpa" : "ip6.arpa";
  sl = strlen(suffix);
  if (n + sl + 1 > size) return -1;
  memcpy(out, tmp, n);
  memcpy(out + n, suffix, sl + 1);
  return (int)(n + sl);
}

/* dnsbl_escape - a DNS string made safe for a reply line: bytes outside 32..126 become '?' */
size_t dnsbl_escape(char *out, size_t size, const char *in, size_t len)
{
  size_t i, n = 0;
  if (!size) return 0;
  for (i = 0; i < len && n + 1 < size; ++i) {
    unsigned char c = (unsigned char)in[i];
    out[n++] = c >= 32 && c < 127 ? (char)c : '?';
  }
  out[n] = 0;
  return n;
}

/* ---- the channel and io.c's poll loop */

static void sockstate(void *data, ares_socket_t fd, int r, int w)
{
  int i;
  (void)data;
  for (i = 0; i < nsocks; ++i)
    if (socks[i].fd == fd) break;
  if (!r && !w) {
    if (i < nsocks) socks[i] = socks[--nsocks];
    return;
  }
  if (i == nsocks) {
    if (nsocks == SOCKS_MAX) return;
    ++nsocks;
  }
  socks[i].fd = fd; socks[i].r = r; socks[i].w = w;
}

static int wfill(struct pollfd *p, int max, void *ctx)
{
  int i, n = 0;
  (void)ctx;
  for (i = 0; i < nsocks && n < max; ++i, ++n) {
    p[n].fd = socks[i].fd;
    p[n].events = (short)((socks[i].r ? POLLIN : 0) | (socks[i].w ? POLLOUT : 0));
    p[n].revents = 0;
  }
  return n;
}

static long wtimeout(void *ctx)
{
  struct timeval tv, *t;
  long ms = -1, left;
  long long now = io_now_ms();
  (void)ctx;
  if (!inflight) return -1;
  if ((t = ares_timeout(ch, 0, &tv))) ms = (long)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
  if (!client.closed && client.pending) {
    left = client.deadline > now ? (long)(client.deadline - now) : 0;
    if (ms < 0 || left < ms) ms = left;
  }
  if (!sender.closed && sender.pending) {
    left = sender.deadline > now ? (long)(sender.deadline - now) : 0;
    if (ms < 0 || left < ms) ms = left;
  }
  if (!extra.closed && extra.pending) {
    left = extra.deadline > now ? (long)(extra.deadline - now) : 0;
    if (ms < 0 || left < ms) ms = left;
  }
  return ms;
}

static void finish(struct batch *b);

/* expire - close the batches past their deadline; cancel what nobody waits for any more */
static void expire(void)
{
  long long now = io_now_ms();
  if (!client.closed && client.pending && now >= client.deadline) { client.closed = 1; finish(&client); }
  if (!sender.closed && sender.pending && now >= sender.deadline) { sender.closed = 1; finish(&sender); }
  if (!extra.closed && extra.pending && now >= extra.deadline) { extra.closed = 1; finish(&extra); }
  if (inflight && (client.closed || !client.pending) && (sender.closed || !sender.pending) &&
      (extra.closed || !extra.pending))
    ares_cancel(ch);
}

static const struct io_watch watch;

static void wready(const struct pollfd *p, int n, void *ctx)
{
  int i;
  (void)ctx;
  for (i = 0; i < n; ++i) {
    if (!p[i].revents) continue;
    ares_process_fd(ch, p[i].revents & (POLLIN | POLLERR | POLLHUP) ? p[i].fd : ARES_SOCKET_BAD,
                    p[i].revents & POLLOUT ? p[i].fd : ARES_SOCKET_BAD);
  }
  ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  /* timeouts and retries */
  expire();
  if (!inflight && watching) { io_watch_del(&watch); watching = 0; }
}

static const struct io_watch watch = {wfill, wready, wtimeout, 0};

/* servers - DNSSERVERS, else control/dnsservers (ip[:port] a line), as c-ares' csv in *x;
 * 1 given, 0 none (/etc/resolv.conf), -1 unreadable */
static int servers(const char **x)
{
  static stralloc sa, csv;
  size_t i;
  *x = envval[E_DNSSERVERS];
  if (!*x) {
    int r = control_readfile(&sa, "control/dnsservers");
    if (r == -1) return -1;
    if (!r || !sa.len) return 0;
    csv.len = 0;
    for (i = 0; i < sa.len; i += strlen(sa.s + i) + 1)
      if ((csv.len && !stralloc_cats(&csv, ",")) || !stralloc_cats(&csv, sa.s + i)) return -1;
    if (!stralloc_0(&csv)) return -1;
    *x = csv.s;
  }
  if (!**x) return 0;
  if ((*x)[strcspn(*x, " \t")]) {  /* "a b", "a, b": commas and blanks both separate */
    static stralloc norm;
    const char *in = *x;
    norm.len = 0;
    for (i = 0; in[i]; ++i) {
      char c = in[i] == ' ' || in[i] == '\t' ? ',' : in[i];
      if (c == ',' && (!norm.len || norm.s[norm.len - 1] == ',')) continue;
      if (!stralloc_append(&norm, &c)) return -1;
    }
    while (norm.len && norm.s[norm.len - 1] == ',') --norm.len;
    if (!stralloc_0(&norm)) return -1;
    *x = norm.s;
  }
  return **x != 0;
}

static void logerr(const char *what, const char *detail)
{
  if (!log_on(LOG_ERROR)) return;
  log_start("error");
  log_str("reason", "dns");
  log_str("what", what);
  if (detail) log_str("detail", detail);
  log_end();
}

/* ip4list - csv "a.b.c.d[:port],..." as up to n IPv4 addresses sharing one port (1-65535,
 * 53 when none is written): the number of them, or 0 when the list has another shape (IPv6,
 * mixed ports, too many) or anything c-ares' parser might judge otherwise (a leading zero, an
 * empty entry), which then goes to c-ares' own csv parser and its verdict */
static int ip4list(const char *csv, struct in_addr *a, int n, unsigned *port)
{
  int k = 0;
  unsigned p0 = 0;
  while (*csv) {
    unsigned char b[4];
    unsigned v, p = 53;
    int i, d;
    if (k == n) return 0;
    for (i = 0; i < 4; ++i) {
      if (i && *csv++ != '.') return 0;
      if (csv[0] == '0' && csv[1] >= '0' && csv[1] <= '9') return 0;  /* as inet_pton: no "01" */
      for (v = 0, d = 0; *csv >= '0' && *csv <= '9' && d < 3; ++d) v = v * 10 + (unsigned)(*csv++ - '0');
      if (!d || v > 255) return 0;
      b[i] = (unsigned char)v;
    }
    if (*csv == ':') {
      ++csv;
      for (p = 0, d = 0; *csv >= '0' && *csv <= '9' && d < 5; ++d) p = p * 10 + (unsigned)(*csv++ - '0');
      if (!d || !p || p > 65535) return 0;
    }
    if (*csv && *csv++ != ',') return 0;
    if (k && p != p0) return 0;
    p0 = p;
    memcpy(&a[k++], b, 4);
  }
  *port = p0;
  return k;
}

/* channel - the session's c-ares channel, made on first need; 0 or -1 (checks fail open/4xx).
 * What c-ares would otherwise work out for features dnsbl.c never uses is given as an option:
 * no search domains and ndots 1 (ares_query never searches: no gethostname), no sortlist
 * (only ares_gethostbyname sorts), lookups "b" (no nsswitch.conf, host.conf). When the
 * servers are configured here too, every setting c-ares would look up in /etc/resolv.conf is
 * given and it reads no file for its configuration; IPv4 servers on one port (the usual
 * shape) go in as ARES_OPT_SERVERS and ARES_OPT_UDP_PORT/TCP_PORT, any other list through
 * ares_set_servers_ports_csv after. What c-ares 1.18.1 still does in ares_init_options, with
 * no option to skip it, is the floor of the channel's cost (see bench/dns): 3 073 list heads
 * for its query tables and an RC4 key schedule seeded from /dev/urandom. */
static int channel(void)
{
  struct ares_options o;
  struct in_addr ip4[8];
  const char *csv;
  int tmo, mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS | ARES_OPT_SOCK_STATE_CB |
                  ARES_OPT_DOMAINS | ARES_OPT_SORTLIST | ARES_OPT_NDOTS;
  int given, n4 = 0;
  unsigned port = 53;
  if (chok) return chok > 0 ? 0 : -1;
  chok = -1;
  if ((given = servers(&csv)) == -1) {
    logerr("servers", envval[E_DNSSERVERS] ? envval[E_DNSSERVERS] : "control/dnsservers");
    return -1;
  }
  memset(&o, 0, sizeof o);
  o.ndomains = o.nsort = 0;
  o.ndots = 1;
  if (given) {
    mask |= ARES_OPT_SERVERS;
    if ((n4 = ip4list(csv, ip4, sizeof ip4 / sizeof ip4[0], &port)) > 0) {
      o.servers = ip4;
      o.nservers = n4;
      if (port != 53) {
        mask |= ARES_OPT_UDP_PORT | ARES_OPT_TCP_PORT;
        o.udp_port = o.tcp_port = (unsigned short)port;
      }
    }
  }
  tmo = (int)(budget / 4);
  o.timeout = tmo < 50 ? 50 : tmo;
  o.tries = 2;
  o.lookups = (char *)"b";
  o.sock_state_cb = sockstate;
  if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS ||
      ares_init_options(&ch, &o, mask) != ARES_SUCCESS) {
    logerr("init", 0);
    return -1;
  }
  if (given && !n4 && ares_set_servers_ports_csv(ch, csv) != ARES_SUCCESS) {
    logerr("servers", envval[E_DNSSERVERS] ? envval[E_DNSSERVERS] : "control/dnsservers");
    ares_destroy(ch);
    return -1;
  }
  chok = 1;
  return 0;
}

static void answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen);

static void ask(const char *name, int type, int kind, int idx, struct batch *b)
{
  struct query *q = malloc(sizeof *q);
  if (!q) return;
  q->kind = kind; q->idx = idx; q->b = b; q->gen = b->gen;
  ++b->pending;
  ++inflight;
  if (!watching) { watching = io_watch_add(&watch) == 0; }
  ares_query(ch, name, ns_c_in, type, answer, q);
}

/* ask_rhs - every RHSBL zone about name (target R_*), in batch b */
static void ask_rhs(int target, const char *name, struct batch *b)
{
  char q[NAME_MAX_];
  size_t n = strlen(name);
  int i;
  for (i = 0; i < nrzones; ++i) rh[target][i].state = Q_MISS, rh[target][i].txt[0] = 0;
  while (n && name[n - 1] == '.') --n;
  if (!n || n >= NAME_MAX_ || !memchr(name, '.', n) || name[0] == '[') return;
  memcpy(rhname[target], name, n);
  rhname[target][n] = 0;
  for (i = 0; i < nrzones; ++i) {
    size_t zl = strlen(rzones[i].z.name);
    if (n + 1 + zl >= sizeof q) continue;
    memcpy(q, name, n);
    q[n] = '.';
    memcpy(q + n + 1, rzones[i].z.name, zl + 1);
    rh[target][i].state = Q_PENDING;
    ask(q, ns_t_a, K_RA, target * ZONES_MAX + i, b);
    ask(q, ns_t_txt, K_RTXT, target * ZONES_MAX + i, b);
  }
}

static void finish(struct batch *b);

static void release(struct batch *b)
{
  if (!--b->pending) finish(b);
}

static void begin(struct batch *b)
{
  ++b->gen;
  b->pending = 1;  /* held until every query is sent: an answer given at once (a bad name,
                     no server) must not complete the batch early; see release() */
  b->closed = 0; b->done = 0;
  b->start = io_now_ms();
  b->deadline = b->start + budget;
}

/* ---- answers */

static int definite(int status) { return status == ARES_ENOTFOUND || status == ARES_ENODATA; }

static void got_a(const struct dnsbl_zone *zz, struct hit *z, int status, unsigned char *abuf,
                  int alen)
{
  struct ares_addrttl at[8];
  int n = 8, i;
  if (status == ARES_SUCCESS && ares_parse_a_reply(abuf, alen, 0, at, &n) != ARES_SUCCESS)
    status = ARES_EBADRESP;
  if (status != ARES_SUCCESS) { z->state = definite(status) ? Q_MISS : Q_FAIL; return; }
  z->state = Q_MISS;
  for (i = 0; i < n; ++i) {
    unsigned char a[4];
    memcpy(a, &at[i].ipaddr, 4);
    if (dnsbl_match(zz, a)) { z->state = Q_HIT; memcpy(z->code, a, 4); return; }
  }
}

static void got_txt(struct hit *z, int status, unsigned char *abuf, int alen)
{
  struct ares_txt_ext *t = 0, *p;
  size_t n = 0;
  if (status != ARES_SUCCESS || ares_parse_txt_reply_ext(abuf, alen, &t) != ARES_SUCCESS) return;
  for (p = t; p && n < TXT_MAX; p = p->next) {
    if (p != t && p->record_start) break;
    n += dnsbl_escape(z->txt + n, sizeof z->txt - n, (const char *)p->txt, p->length);
  }
  ares_free_data(t);
}

static void got_ptr(int status, unsigned char *abuf, int alen)
{
  struct hostent *h = 0;
  int i;
  if (status == ARES_SUCCESS &&
      ares_parse_ptr_reply(abuf, alen, ipbytes, family == AF_INET ? 4 : 16, family, &h) != ARES_SUCCESS)
    status = ARES_EBADRESP;
  if (status != ARES_SUCCESS) { ptrstate = definite(status) ? Q_NX : Q_FAIL; return; }
  ptrstate = Q_HIT;
  for (i = -1; nptr < PTR_NAMES && (i < 0 ? h->h_name : h->h_aliases[i]); ++i) {
    const char *nm = i < 0 ? h->h_name : h->h_aliases[i];
    size_t l = strlen(nm);
    if (!l || l >= NAME_MAX_) continue;
    memcpy(ptrnames[nptr], nm, l + 1);
    ++nptr;
  }
  if (!nptr) ptrstate = Q_NX;
  ares_free_hostent(h);
  if (nptr) ask_rhs(R_PTR, ptrnames[0], &client);
  for (i = 0; i < nptr; ++i) {
    ++fwdpending;
    ask(ptrnames[i], family == AF_INET ? ns_t_a : ns_t_aaaa, K_FWD, i, &client);
  }
}

static void got_fwd(int status, unsigned char *abuf, int alen)
{
  int i, n = 8;
  --fwdpending;
  if (status == ARES_SUCCESS) {
    if (family == AF_INET) {
      struct ares_addrttl at[8];
      if (ares_parse_a_reply(abuf, alen, 0, at, &n) != ARES_SUCCESS) { fwdfail = 1; return; }
      for (i = 0; i < n; ++i) if (!memcmp(&at[i].ipaddr, ipbytes, 4)) fwdmatch = 1;
    } else {
      struct ares_addr6ttl at[8];
      if (ares_parse_aaaa_reply(abuf, alen, 0, at, &n) != ARES_SUCCESS) { fwdfail = 1; return; }
      for (i = 0; i < n; ++i) if (!memcmp(&at[i].ip6addr, ipbytes, 16)) fwdmatch = 1;
    }
  } else if (!definite(status)) fwdfail = 1;
}

static void got_sender(int k, int status, unsigned char *abuf, int alen)
{
  int *st = &sstate[k - K_MX];
  if (status == ARES_SUCCESS && k == K_MX) {
    struct ares_mx_reply *mx = 0, *p;
    if (ares_parse_mx_reply(abuf, alen, &mx) != ARES_SUCCESS) { *st = Q_FAIL; return; }
    *st = Q_MISS;  /* only a null MX (RFC 7505 ".") */
    for (p = mx; p; p = p->next) if (p->host && *p->host) *st = Q_HIT;
    ares_free_data(mx);
    return;
  }
  if (status == ARES_SUCCESS) {
    struct ares_addrttl a4[4];
    struct ares_addr6ttl a6[4];
    int n = 4;
    if ((k == K_SA ? ares_parse_a_reply(abuf, alen, 0, a4, &n)
                   : ares_parse_aaaa_reply(abuf, alen, 0, a6, &n)) != ARES_SUCCESS)
      *st = Q_FAIL;
    else *st = n > 0 ? Q_HIT : Q_MISS;
    return;
  }
  *st = status == ARES_ENOTFOUND || status == ARES_EBADNAME ? Q_NX : status == ARES_ENODATA ? Q_MISS : Q_FAIL;
}

/* ---- lookups for other modules (switches.c: qmail-ldap's RBL, sagredo's DNSBLLIST) */

static struct dnsbl_answer xans[DNSBL_EXTRA_MAX];
static int nxq, xopen;  /* answers so far; a round is open */
static void pump(struct batch *b);

static int xstate(int status)
{
  return definite(status) || status == ARES_EBADNAME ? DNSBL_X_NOT : DNSBL_X_FAIL;
}

static void got_extra(int k, int i, int status, unsigned char *abuf, int alen)
{
  struct dnsbl_answer *x = &xans[i];
  if (k == K_XTXT) {
    struct hit h;
    h.txt[0] = 0;
    got_txt(&h, status, abuf, alen);
    memcpy(x->txt, h.txt, sizeof x->txt);
    x->txtstate = status == ARES_SUCCESS ? (h.txt[0] ? DNSBL_X_LISTED : DNSBL_X_NOT) : xstate(status);
    return;
  }
  x->state = DNSBL_X_FAIL;
  if (status == ARES_SUCCESS) {
    struct ares_addrttl at[8];
    int n = 8, j;
    if (ares_parse_a_reply(abuf, alen, 0, at, &n) != ARES_SUCCESS) return;
    for (j = 0; j < n; ++j) memcpy(x->a[j], &at[j].ipaddr, 4);
    x->n = n;
    x->state = n ? DNSBL_X_LISTED : DNSBL_X_NOT;
  } else x->state = xstate(status);
}

int dnsbl_extra(const char *name, int txt)
{
  if (!xopen) {  /* a new round: begin() makes late answers of an earlier one stale */
    if (channel() == -1) return -1;
    begin(&extra);
    xopen = 1;
  }
  if (nxq == DNSBL_EXTRA_MAX) return -1;
  xans[nxq].state = xans[nxq].txtstate = DNSBL_X_PENDING;
  ask(name, ns_t_a, K_XA, nxq, &extra);
  if (txt) ask(name, ns_t_txt, K_XTXT, nxq, &extra);
  else xans[nxq].txtstate = DNSBL_X_NOT;
  return nxq++;
}

const struct dnsbl_answer *dnsbl_extra_wait(void)
{
  int i;
  if (xopen) {
    xopen = 0;
    release(&extra);  /* begin() held the round open while queries were sent */
    if (!extra.done) pump(&extra);
    extra.closed = 1;
  }
  for (i = 0; i < nxq; ++i) {
    if (xans[i].state == DNSBL_X_PENDING) xans[i].state = DNSBL_X_FAIL;
    if (xans[i].txtstate == DNSBL_X_PENDING) xans[i].txtstate = DNSBL_X_FAIL;
  }
  return xans;
}

static void answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
  struct query *q = arg;
  struct batch *b = q->b;
  (void)timeouts;
  --inflight;
  if (q->gen == b->gen && !b->closed) {
    switch (q->kind) {
      case K_A: got_a(&zones[q->idx].z, &zones[q->idx].h, status, abuf, alen); break;
      case K_TXT: got_txt(&zones[q->idx].h, status, abuf, alen); break;
      case K_RA:
        got_a(&rzones[q->idx % ZONES_MAX].z, &rh[q->idx / ZONES_MAX][q->idx % ZONES_MAX], status,
              abuf, alen);
        break;
      case K_RTXT: got_txt(&rh[q->idx / ZONES_MAX][q->idx % ZONES_MAX], status, abuf, alen); break;
      case K_PTR: got_ptr(status, abuf, alen); break;
      case K_FWD: got_fwd(status, abuf, alen); break;
      case K_XA: case K_XTXT: got_extra(q->kind, q->idx, status, abuf, alen); break;
      default: got_sender(q->kind, status, abuf, alen);
    }
    if (!--b->pending) finish(b);
  }
  free(q);
}

/* ---- facts and the log line */

static const char *statusname(int st)
{
  static const char *const n[] = {"unknown", "ok", "none", "mismatch", "temp"};
  return st >= 0 && st <= DNS_TEMP ? n[st] : "unknown";
}

static void logfacts(void)
{
  static stralloc bl, to;
  int i;
  bl.len = to.len = 0;
  for (i = 0; i < nzones; ++i) {
    struct zone *z = &zones[i];
    stralloc *sa = z->h.state == Q_HIT ? &bl : z->h.state == Q_FAIL || z->h.state == Q_PENDING ? &to : 0;
    char code[20];
    if (!sa) continue;
    if (sa->len) stralloc_cats(sa, ",");
    stralloc_cats(sa, z->z.name);
    if (sa == &bl) {
      inet_ntop(AF_INET, z->h.code, code, sizeof code);
      stralloc_cats(sa, ":");
      stralloc_cats(sa, code);
    }
  }
  log_start("dns");
  log_str("ip", sess->remoteip);
  if (sess->rdns) {
    if (sess->rdns == DNS_OK) log_clients("rdns", sess->rdns_name);
    else log_str("rdns", statusname(sess->rdns));
  }
  if (sess->fcrdns) log_str("fcrdns", statusname(sess->fcrdns));
  if (stralloc_0(&bl) && bl.len > 1) log_str("dnsbl", bl.s);
  if (nzones) {
    char num[24];
    int sc = sess->dnsbl_score;
    size_t n = 0;
    if (sc < 0) { num[n++] = '-'; sc = -sc; }
    n += fmt_ulong(num + n, (unsigned long)sc);
    num[n] = 0;
    log_str("score", num);
  }
  if (stralloc_0(&to) && to.len > 1) log_str("dnsbl_fail", to.s);
  log_ulong("dns_ms", (unsigned long)client.ms);
  log_end();
}

static void finish_client(void)
{
  int i, score = 0;
  if (ptrasked) {
    sess->rdns = ptrstate == Q_HIT ? DNS_OK : ptrstate == Q_NX ? DNS_NONE : DNS_TEMP;
    if (ptrstate == Q_HIT) sess->rdns_name = ptrnames[0];
    if (ptrstate == Q_NX) sess->fcrdns = DNS_NONE;
    else if (ptrstate != Q_HIT) sess->fcrdns = DNS_TEMP;
    else if (fwdmatch) sess->fcrdns = DNS_OK;
    else if (fwdfail || fwdpending) sess->fcrdns = DNS_TEMP;
    else sess->fcrdns = DNS_MISMATCH;
  }
  for (i = 0; i < nrzones; ++i)
    if (rh[R_PTR][i].state == Q_PENDING) rh[R_PTR][i].state = Q_FAIL;
  for (i = 0; i < nzones; ++i) {
    if (zones[i].h.state == Q_PENDING) zones[i].h.state = Q_FAIL;
    if (zones[i].h.state == Q_HIT) score += zones[i].z.weight;
  }
  sess->dnsbl_score = score;
  if (log_on(LOG_INFO)) logfacts();
}

static void finish(struct batch *b)
{
  if (b->done) return;
  b->done = 1;
  b->ms = io_now_ms() - b->start;
  if (b == &client) finish_client();
  else if (b == &sender) {
    int i;
    for (i = 0; i < 3; ++i) if (sstate[i] == Q_PENDING) sstate[i] = Q_FAIL;
    for (i = 0; i < nrzones; ++i) {
      if (rh[R_SENDER][i].state == Q_PENDING) rh[R_SENDER][i].state = Q_FAIL;
      if (rh[R_HELO][i].state == Q_PENDING) rh[R_HELO][i].state = Q_FAIL;
    }
  }
}

/* pump - serve the channel alone until batch b is complete or past its deadline */
static void pump(struct batch *b)
{
  buffer_flush(&io_out);
  while (!b->done && b->pending) {
    struct pollfd p[SOCKS_MAX];
    int n = wfill(p, SOCKS_MAX, 0);
    long t = wtimeout(0);
    if (poll(p, (nfds_t)n, t < 0 ? 1000 : (int)t) == -1 && errno != EINTR) break;
    wready(p, n, 0);
  }
  if (!b->done) { b->closed = 1; finish(b); }
}

/* ---- configuration */


/* onoff - env name, else the first line of control file fn: 0 off, 1 on, 2 for "fcrdns" */
static int onoff(int env, const char *fn, int *v)
{
  static stralloc sa;
  const char *x = envval[env];
  if (!x) {
    int r = control_readline(&sa, fn);
    if (r == -1) return -1;
    if (!r || !stralloc_0(&sa)) { *v = 0; return 0; }
    x = sa.s;
  }
  *v = !strcmp(x, "fcrdns") ? 2 : (*x && strcmp(x, "0") && strcmp(x, "no") && strcmp(x, "off"));
  return 0;
}

static int numsetting(int env, const char *fn, long *v)
{
  int i;
  const char *x = envval[env];
  if (x) { *v = strtol(x, 0, 10); return 0; }
  i = (int)*v;
  if (control_readint(&i, fn) == -1) return -1;
  *v = i;
  return 0;
}

/* readzones - control file fn into zs (postscreen lines); bad lines are logged and skipped */
static int readzones(const char *fn, const char *tag, struct zone *zs, int *nz)
{
  static stralloc sa;
  size_t i;
  int r = control_readfile(&sa, fn);
  if (r != 1) return r;
  for (i = 0; i < sa.len && *nz < ZONES_MAX; i += strlen(sa.s + i) + 1) {
    struct zone *z = &zs[*nz];
    stralloc rs = {0};
    if (dnsbl_parse_zone(sa.s + i, &z->z) == -1) { logerr(fn, sa.s + i); continue; }
    if (!stralloc_copys(&rs, tag) || !stralloc_cats(&rs, z->z.name) || !stralloc_0(&rs))
      return -1;
    z->reason = rs.s;
    ++*nz;
  }
  return 1;
}

static int settings(const char **file)
{
  long th = threshold;
  int rm = 0;
  envscan();
  tagonly = envon(E_RBLONLYHEADER) || envon(E_DNSBLTAG);
  greetmode = envon(E_DNSBLGREETING);
  if (envval[E_RBLSMTPD]) rblsmtpd = envval[E_RBLSMTPD];  /* rblsmtpd's verdict replaces lists */
  else if (!envval[E_DNSBLSKIP] && readzones("control/dnsbl", "dnsbl:", zones, &nzones) == -1)
    return *file = "control/dnsbl", -1;
  if (!envval[E_RHSBLSKIP] && readzones("control/rhsbl", "rhsbl:", rzones, &nrzones) == -1)
    return *file = "control/rhsbl", -1;
  if (envon(E_REQUIREFCRDNS)) wantptr = 2;
  else if (onoff(E_REQUIREPTR, "control/requireptr", &wantptr) == -1)
    return *file = "control/requireptr", -1;
  if (envval[E_RETURNMXCHECK]) rm = 1;  /* qmail-ldap: set, to any value, is on */
  else if (onoff(E_RETURNMXCHECK, "control/returnmxcheck", &rm) == -1)
    return *file = "control/returnmxcheck", -1;
  returnmx = rm != 0;
  active = nzones || nrzones || wantptr || returnmx || (rblsmtpd && *rblsmtpd);
  if (!nzones && !nrzones && !wantptr && !returnmx) return 0;
  if (numsetting(E_DNSBLTHRESHOLD, "control/dnsblthreshold", &th) == -1)
    return *file = "control/dnsblthreshold", -1;
  threshold = (int)th;
  if (nzones && onoff(E_DNSBLFAILCLOSED, "control/dnsblfailclosed", &failclosed) == -1)
    return *file = "control/dnsblfailclosed", -1;
  if (numsetting(E_DNSBUDGET, "control/dnsbudget", &budget) == -1)
    return *file = "control/dnsbudget", -1;
  if (budget < 1) budget = 1;
  if (budget > 120000) budget = 120000;
  return 0;
}

int dnsbl_start(struct session *s, const char **file)
{
  char name[NAME_MAX_];
  int i;
  sess = s;
  if (s->relayclient) return 0;  /* our own clients: no DNS verdicts */
  if (getenv("MXG_OFFLINE")) return 0;  /* mxguard-rules explain --offline: no DNS at all */
  if (settings(file) == -1) return -1;
  if (!nzones && !nrzones && !wantptr && !factptr) return 0;
  if (!nzones && !nrzones && !wantptr && factptr == 1 && getenv("TCPREMOTEHOST") &&
      *getenv("TCPREMOTEHOST"))
    return 0;  /* the rules want the PTR name and tcpserver has it: no channel needed */
  if (!parseip(s->remoteip, ipbytes, &family)) return 0;
  if (channel() == -1) return 0;
  begin(&client);
  {
    const char *h = getenv("TCPREMOTEHOST");
    if (h && *h && wantptr != 2 && factptr != 2) {  /* tcpserver already asked and nobody needs more */
      s->rdns = DNS_OK; s->rdns_name = h;
      ask_rhs(R_PTR, h, &client);  /* its RHSBL all the same */
      rhsptr = 1;
    } else if (dnsbl_revname(name, sizeof name, s->remoteip, 0) > 0) {
      ptrasked = 1;
      ask(name, ns_t_ptr, K_PTR, 0, &client);
    }
  }
  for (i = 0; i < nzones; ++i)
    if (dnsbl_revname(name, sizeof name, s->remoteip, zones[i].z.name) > 0) {
      ask(name, ns_t_a, K_A, i, &client);
      ask(name, ns_t_txt, K_TXT, i, &client);
    } else zones[i].h.state = Q_FAIL;
  release(&client);
  return 0;
}

struct decision dnsbl_mail(struct session *s)
{
  const char *a = s->rcpt.s, *at;
  size_t len = s->rcpt.len;
  char dom[NAME_MAX_];
  size_t dl = 0;
  if ((!returnmx && !nrzones) || s->relayclient || s->auth_user) return DECISION_NONE;
  ++sender.gen;
  senderon = mxon = 0;
  if (len && (at = memchr(a, '@', len))) {  /* the null sender is exempt */
    dl = len - (size_t)(at + 1 - a);
    if (dl >= sizeof dom || at[1] == '[') dl = 0;
    memcpy(dom, at + 1, dl);
  }
  dom[dl] = 0;
  if (channel() == -1) return DECISION_NONE;
  begin(&sender);
  senderon = 1;
  if (dl && returnmx) {
    mxon = 1;
    sstate[0] = sstate[1] = sstate[2] = Q_PENDING;
    ask(dom, ns_t_mx, K_MX, 0, &sender);
    ask(dom, ns_t_a, K_SA, 0, &sender);
    ask(dom, ns_t_aaaa, K_SAAAA, 0, &sender);
  }
  if (nrzones) {
    ask_rhs(R_SENDER, dom, &sender);
    ask_rhs(R_HELO, s->helo.len ? s->helo.s : "", &sender);
  }
  release(&sender);
  return DECISION_NONE;
}

/* ---- decisions */

static struct decision refuse(int code, const char *esc, const char *text, const char *why)
{
  struct decision d = DECISION_NONE;
  d.code = code; d.esc = esc; d.text = text; d.reason = why; d.qmail = 1;
  return d;
}

static const char *say(const char *a, const char *b, const char *c)
{
  size_t n = 0;
  txtbuf[0] = 0;
  n += dnsbl_escape(txtbuf + n, sizeof txtbuf - n, a, strlen(a));
  n += dnsbl_escape(txtbuf + n, sizeof txtbuf - n, b, strlen(b));
  dnsbl_escape(txtbuf + n, sizeof txtbuf - n, c, strlen(c));
  return txtbuf;
}

static struct decision verdict_rbl(void)
{
  struct decision d = DECISION_NONE;
  int perm = *rblsmtpd == '-';
  d.code = perm ? 553 : 451;
  d.text = say(rblsmtpd + perm, "", "");
  d.reason = "rblsmtpd";
  return d;
}

static struct decision verdict_lists(void)
{
  static stralloc t;
  struct zone *best = 0;
  int i;
  for (i = 0; i < nzones; ++i)
    if (zones[i].h.state == Q_HIT && zones[i].z.weight > 0 && (!best || zones[i].z.weight > best->z.weight))
      best = &zones[i];
  if (!best || sess->dnsbl_score < threshold) return DECISION_NONE;
  t.len = 0;
  if (!stralloc_copys(&t, "sorry, your mailserver [") || !stralloc_cats(&t, sess->remoteip) ||
      !stralloc_cats(&t, "] is rejected by ") || !stralloc_cats(&t, best->z.name) ||
      (best->h.txt[0] && (!stralloc_cats(&t, ": ") || !stralloc_cats(&t, best->h.txt))) ||
      !stralloc_0(&t))
    return refuse(451, "4.3.0", "out of memory", "nomem");
  return refuse(553, "5.7.1", say(t.s, "", ""), best->reason);
}

static struct decision verdict_rdns(void)
{
  const char *ip = sess->remoteip;
  int st = wantptr == 2 ? sess->fcrdns : sess->rdns;
  if (!wantptr || st == DNS_OK) return DECISION_NONE;
  if (st == DNS_TEMP || st == DNS_UNKNOWN)
    return refuse(451, "4.7.25", say("temporary DNS failure looking up your address [", ip, "]"),
                  wantptr == 2 ? "fcrdns_temp" : "rdns_temp");
  if (wantptr == 2 && st == DNS_MISMATCH)
    return refuse(550, "5.7.25", say("sorry, the name of your address [", ip,
                                     "] does not resolve back to it"), "fcrdns");
  return refuse(550, "5.7.25", say("sorry, your address [", ip, "] has no PTR record"),
                wantptr == 2 ? "fcrdns" : "rdns");
}

static struct decision verdict_sender(void)
{
  int i, fail = 0, nx = 0;
  if (!mxon) return DECISION_NONE;
  for (i = 0; i < 3; ++i) {
    if (sstate[i] == Q_HIT) return DECISION_NONE;
    if (sstate[i] == Q_FAIL || sstate[i] == Q_PENDING) fail = 1;
    if (sstate[i] == Q_NX) nx = 1;
  }
  (void)nx;  /* qmail-ldap's texts: no such domain and no mail server read the same */
  if (fail) return refuse(421, "4.3.0", "DNS temporary failure at return MX check, try again later",
                          "sender_dns_temp");
  return refuse(554, 0, "refused mailfrom because return MX does not exist", "sender_domain");
}

/* dnsbl_returnmx - RETURNMXCHECK at MAIL, as qmail-ldap answers it: wait for the sender
 * domain's MX/A/AAAA (within the budget) and decide; the RCPT check does not ask again */
struct decision dnsbl_returnmx(struct session *s)
{
  struct decision d;
  (void)s;
  if (!mxon) return DECISION_NONE;
  if (!sender.done) pump(&sender);
  d = verdict_sender();
  mxon = 0;
  return d;
}

/* verdict_rhs - the first RHSBL listing of the PTR name, the HELO name, the sender domain */
static struct decision verdict_rhs(void)
{
  static const int order[3] = {R_PTR, R_HELO, R_SENDER};
  static const char *const what[3] = {"envelope sender domain ", "HELO name ", "host name "};
  static stralloc t;
  int i, k;
  for (k = 0; k < 3; ++k)
    for (i = 0; i < nrzones; ++i) {
      struct hit *h = &rh[order[k]][i];
      if (h->state != Q_HIT) continue;
      if ((order[k] == R_PTR && !ptrasked && !rhsptr) || (order[k] != R_PTR && !senderon)) continue;
      t.len = 0;
      if (!stralloc_copys(&t, "sorry, your ") || !stralloc_cats(&t, what[order[k]]) ||
          !stralloc_cats(&t, rhname[order[k]]) || !stralloc_cats(&t, " is rejected by ") ||
          !stralloc_cats(&t, rzones[i].z.name) ||
          (h->txt[0] && (!stralloc_cats(&t, ": ") || !stralloc_cats(&t, h->txt))) ||
          !stralloc_0(&t))
        return refuse(451, "4.3.0", "out of memory", "nomem");
      return refuse(553, "5.7.1", say(t.s, "", ""), rzones[i].reason);
    }
  return DECISION_NONE;
}

const char *dnsbl_header(void)
{
  static stralloc h;
  int i;
  if (!tagonly || !nzones || !client.done || sess->dnsbl_score < threshold) return 0;
  for (i = 0; i < nzones; ++i)
    if (zones[i].h.state == Q_HIT && zones[i].z.weight < 0) return 0;
  h.len = 0;
  if (!stralloc_copys(&h, "X-RBL:")) return 0;
  for (i = 0; i < nzones; ++i) {
    struct zone *z = &zones[i];
    char code[20];
    if (z->h.state != Q_HIT || z->z.weight <= 0) continue;
    inet_ntop(AF_INET, z->h.code, code, sizeof code);
    if (!stralloc_cats(&h, h.len > 6 ? ",\n\t" : " ") ||
        !stralloc_cats(&h, z->z.name) || !stralloc_cats(&h, " (") || !stralloc_cats(&h, code) ||
        (z->h.txt[0] && (!stralloc_cats(&h, ": ") || !stralloc_cats(&h, z->h.txt))) ||
        !stralloc_cats(&h, ")"))
      return 0;
  }
  if (!stralloc_cats(&h, "\n") || !stralloc_0(&h)) return 0;
  return h.s;
}

/* verdict_client - what the connect-time lookups say: RBLSMTPD, the lists, the rDNS
 * switches; *wl set on a DNSWL hit, which permits */
static struct decision verdict_client(int *wl)
{
  struct decision d;
  int i;
  *wl = 0;
  if (rblsmtpd && *rblsmtpd) return verdict_rbl();
  if (client.gen && !client.done) pump(&client);
  for (i = 0; i < nzones; ++i)
    if (zones[i].h.state == Q_HIT && zones[i].z.weight < 0) { *wl = 1; return DECISION_NONE; }
  d = verdict_lists();
  if (d.code && !tagonly) return d;
  if (failclosed)  /* sagredo's dnsblfailclosed: a list that could not be asked defers */
    for (i = 0; i < nzones; ++i)
      if (zones[i].h.state == Q_FAIL && zones[i].z.weight > 0)
        return refuse(451, "4.7.1", "temporary RBL lookup error", zones[i].reason);
  return verdict_rdns();
}

int dnsbl_ptr_pending(void) { return ptrasked && !client.done; }

struct decision dnsbl_greeting(struct session *s)
{
  struct decision d;
  int wl;
  if (!greetmode || !active || s->relayclient) return DECISION_NONE;
  d = verdict_client(&wl);
  if (d.code) { d.code = d.code >= 500 ? 554 : 421; d.drop = 1; }
  return d;
}

struct decision dnsbl_rcpt(struct session *s)
{
  struct decision d;
  int wl;
  if (!active || s->relayclient || s->auth_user) return DECISION_NONE;
  d = verdict_client(&wl);
  if (d.code || wl) return d;
  if (senderon && !sender.done) pump(&sender);
  d = verdict_rhs();
  if (d.code) return d;
  return verdict_sender();
}

/* ---- facts for the rules engine */

void dnsbl_want(int want) { factptr = want; }

void dnsbl_wait(void)
{
  if (client.gen && !client.done) pump(&client);
}

int dnsbl_zones(stralloc *out)
{
  int i;
  out->len = 0;
  for (i = 0; i < nzones; ++i)
    if (zones[i].h.state == Q_HIT && !stralloc_catb(out, zones[i].z.name, strlen(zones[i].z.name) + 1))
      return -1;
  return 0;
}
