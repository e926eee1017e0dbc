/* tarpit.c - slows and limits clients. Decides: the recipient tarpit (qmail-ldap's
 * TARPITCOUNT/TARPITDELAY), recipient limits (MAXRCPTCOUNT: 553 as qmail-ldap; sagredo's
 * control/maxrcpt: 452), MAXERRORS, the greeting delay by client class with early-talker
 * refusal (smtp-delay; qmail-ldap's GREETDELAY/DROPRUSHGREET), inbound THROTTLE and
 * MAXSESSIONTIME (throttle.c), rates across connections (anvil) and greylisting (postgrey)
 * through store.c, and TARPITBUDGET, the site-wide cap on sleeping sessions.
 *
 * Reads per-recipient settings (TARPIT*, MAXRCPTCOUNT, RCPTRATE*, GREYLIST*) with rules_get(),
 * per-client ones from the environment set by tcprules/the instruct cdb (cget: one pass over
 * environ finds whether any is set), control/maxrcpt, control/dynamicptr (POSIX extended
 * regexes, case-insensitive, only when a *_DYNAMIC setting exists and the client has a PTR),
 * control/limitexempt (networks exempt from delays, rates and greylisting), control/
 * tarpitbudget. A setting it cannot parse is logged and left at its default. Every wait is
 * io_wait() in io.c's poll loop. The store down: rates, greylisting and the budget fail open
 * (store.c logs it); nothing here ever answers 5xx because of the store. */
#include <arpa/inet.h>
#include <regex.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <case.h>
#include <stralloc.h>
#include "control.h"
#include "io.h"
#include "log.h"
#include "rules.h"
#include "store.h"
#include "tarpit.h"

static struct session *sess;
static int (*ptr_pending)(void);
static long header_delay;   /* GREYLISTHEADER: the longest delay of this transaction's triplets */
static unsigned rcptcount;          /* RCPTs past the relay test in this transaction */
static char conckey[STORE_KEY_MAX + 1];  /* CONNMAX member joined */
static int joined;

/* ---------------------------------------------------------------- client settings */

/* Client settings come from the environment (tcprules, the instruct cdb). It is scanned once
 * for their prefixes, so a session that sets none of them pays one pass over environ instead
 * of a getenv() per name. Per-recipient settings go through rules_get(). */
extern char **environ;
static const char *const cprefix[] = {"GREETDELAY", "THROTTLE", "MAXSESSIONTIME", "CONNRATE",
  "CONNMAX", "MSGRATE", "AUTHFAILRATE", "BADRCPTRATE", "MAXERRORS", "LIMITEXEMPT",
  "RATEIPV6PREFIX", "TARPITBUDGET", "DROPRUSHGREET", 0};
static unsigned cmask;
static int scanned;

static const unsigned char cplen[] = {10, 8, 14, 8, 7, 7, 12, 11, 9, 11, 14, 12, 13};

static int cprefix_of(const char *name)
{
  static const signed char first[26][4] = {  /* A..Z: the prefixes starting with that letter */
    {6, -1}, {7, -1}, {3, 4, -1}, {12, -1}, {-1}, {-1}, {0, -1}, {-1}, {-1}, {-1}, {-1},
    {9, -1}, {2, 5, 8, -1}, {-1}, {-1}, {-1}, {-1}, {10, -1}, {-1}, {1, 11, -1}, {-1}, {-1},
    {-1}, {-1}, {-1}, {-1}};
  const signed char *i;
  if (name[0] < 'A' || name[0] > 'Z') return -1;
  for (i = first[name[0] - 'A']; *i >= 0; ++i)
    if (name[1] == cprefix[*i][1] && !strncmp(name, cprefix[*i], cplen[*i])) return *i;
  return -1;
}

static const char *cget(const char *name)
{
  int i;
  if (!scanned) {
    char **e;
    scanned = 1;
    for (e = environ; e && *e; ++e)
      if ((i = cprefix_of(*e)) >= 0) cmask |= 1u << i;
  }
  if (!cmask) return 0;
  i = cprefix_of(name);
  return i >= 0 && !(cmask & (1u << i)) ? 0 : getenv(name);
}

/* sget - a client setting (cprefix) from the environment, a per-recipient one through the
 * rules */
static const char *sget(const char *name)
{
  return (name[0] == 'R' && name[1] == 'C') ? rules_get(name) : cget(name);
}

/* ---------------------------------------------------------------- parsing */

long tarpit_parse_ms(const char *x, long unit_ms)
{
  unsigned long v = 0;
  const char *p = x;
  if (!x || *x < '0' || *x > '9') return -1;
  while (*p >= '0' && *p <= '9') {
    if (v > 100000000UL) return -1;
    v = v * 10 + (unsigned long)(*p++ - '0');
  }
  if (!*p) return (long)v * unit_ms;
  if (!strcmp(p, "ms")) return (long)v;
  if (!strcmp(p, "s")) return (long)v * 1000;
  if (!strcmp(p, "m")) return (long)v * 60000;
  if (!strcmp(p, "h")) return v > 500 ? -1 : (long)v * 3600000;
  if (!strcmp(p, "d")) return v > 20 ? -1 : (long)v * 86400000;
  return -1;
}

int tarpit_parse_rate(const char *x, long *limit, long *window_s)
{
  const char *slash = x ? strchr(x, '/') : 0;
  char n[24];
  long l, w;
  if (!slash || slash == x || (size_t)(slash - x) >= sizeof n) return -1;
  memcpy(n, x, (size_t)(slash - x));
  n[slash - x] = 0;
  if ((l = tarpit_parse_ms(n, 1)) <= 0) return -1;
  if ((w = tarpit_parse_ms(slash + 1, 1000)) < 1000) return -1;
  *limit = l;
  *window_s = w / 1000;
  return 0;
}

static void bad_setting(const char *name, const char *value, const char *what)
{
  if (!log_on(LOG_ERROR)) return;
  log_start("limits");
  log_str("error", "setting");
  log_str("name", name);
  log_clients("value", value);
  log_str("used", what);
  log_end();
}

/* setting_ms - a duration setting (plain number: unit_ms), def when unset; bad: logged, def */
static long setting_ms(const char *name, const char *x, long unit_ms, long def)
{
  long v;
  if (!x) return def;
  if ((v = tarpit_parse_ms(x, unit_ms)) < 0) { bad_setting(name, x, "default"); return def; }
  return v;
}

/* rate - a "N/T" setting: 1 set, 0 unset or bad (logged) */
static int rate(const char *name, long *limit, long *window_s)
{
  const char *x = sget(name);
  if (!x || !*x) return 0;
  if (tarpit_parse_rate(x, limit, window_s) == -1) { bad_setting(name, x, "off"); return 0; }
  return 1;
}

/* ---------------------------------------------------------------- client facts */

int tarpit_net(char *out, size_t size, const char *ip, int v4bits, int v6bits)
{
  unsigned char a[16];
  int i, v6 = strchr(ip, ':') != 0, bits = v6 ? v6bits : v4bits, n = v6 ? 16 : 4;
  if (inet_pton(v6 ? AF_INET6 : AF_INET, ip, a) != 1) return -1;
  if (bits < 0 || bits > n * 8) bits = n * 8;
  for (i = 0; i < n; ++i) {
    int keep = bits - i * 8;
    if (keep >= 8) continue;
    a[i] = keep <= 0 ? 0 : (unsigned char)(a[i] & (0xff << (8 - keep)));
  }
  if (!v6) {  /* inet_ntop goes through sprintf: thousands of instructions */
    size_t l = 0;
    if (size < 16) return -1;
    for (i = 0; i < 4; ++i) {
      unsigned v = a[i];
      if (i) out[l++] = '.';
      if (v >= 100) out[l++] = (char)('0' + v / 100);
      if (v >= 10) out[l++] = (char)('0' + v / 10 % 10);
      out[l++] = (char)('0' + v % 10);
    }
    out[l] = 0;
  } else if (!inet_ntop(AF_INET6, a, out, (socklen_t)size)) return -1;
  if (bits < n * 8) {
    size_t l = strlen(out);
    if (l + 5 > size) return -1;
    out[l++] = '/';
    if (bits >= 100) out[l++] = (char)('0' + bits / 100);
    if (bits >= 10) out[l++] = (char)('0' + bits / 10 % 10);
    out[l++] = (char)('0' + bits % 10);
    out[l] = 0;
  }
  return 0;
}

/* client - the client's rate key: IPv4 address, IPv6 /64 (RATEIPV6PREFIX) */
static const char *client(void)
{
  static char c[64];
  if (!*c) {
    long bits = setting_ms("RATEIPV6PREFIX", cget("RATEIPV6PREFIX"), 1, 64);
    if (tarpit_net(c, sizeof c, sess->remoteip, 32, (int)bits) == -1)
      snprintf(c, sizeof c, "%.60s", sess->remoteip);
  }
  return c;
}

/* tarpit_in_net - ip inside "addr/bits" (or equal to addr): control/limitexempt's lines */
int tarpit_in_net(const char *ip, const char *line)
{
  char net[64], a[64], b[64];
  const char *slash = strchr(line, '/');
  long bits = slash ? atol(slash + 1) : -1;
  size_t l = slash ? (size_t)(slash - line) : strlen(line);
  if (l >= sizeof net || (!!strchr(ip, ':')) != (!!memchr(line, ':', l))) return 0;
  memcpy(net, line, l);
  net[l] = 0;
  if (bits < 0) bits = strchr(ip, ':') ? 128 : 32;
  if (tarpit_net(a, sizeof a, ip, (int)bits, (int)bits) == -1 ||
      tarpit_net(b, sizeof b, net, (int)bits, (int)bits) == -1)
    return 0;
  return !strcmp(a, b);
}

/* exempt - relay clients, DNSWL-listed clients, LIMITEXEMPT, control/limitexempt */
static int exempt(void)
{
  static int known = -1;
  static stralloc nets;
  size_t i;
  if (sess->relayclient || sess->dnsbl_score < 0) return 1;
  if (known >= 0) return known;
  if (cget("LIMITEXEMPT")) return known = 1;
  known = 0;
  if (control_readfile(&nets, "control/limitexempt") == -1) {
    bad_setting("control/limitexempt", "unreadable", "none");
    return 0;
  }
  for (i = 0; i < nets.len; i += strlen(nets.s + i) + 1)
    if (tarpit_in_net(sess->remoteip, nets.s + i)) return known = 1;
  return 0;
}

static const char *ptrname(void)
{
  const char *h = getenv("TCPREMOTEHOST");
  if (sess->rdns == DNS_OK && sess->rdns_name) return sess->rdns_name;
  if (sess->rdns == DNS_NONE) return 0;
  return h && *h ? h : 0;
}

/* dynamic - does the PTR name match a regex of control/dynamicptr */
static int dynamic(const char *name)
{
  static stralloc pats;
  size_t i;
  int r = control_readfile(&pats, "control/dynamicptr");
  if (r == -1) bad_setting("control/dynamicptr", "unreadable", "none");
  if (r != 1) return 0;
  for (i = 0; i < pats.len; i += strlen(pats.s + i) + 1) {
    regex_t re;
    int m;
    if (!pats.s[i] || pats.s[i] == '#') continue;
    if (regcomp(&re, pats.s + i, REG_EXTENDED | REG_ICASE | REG_NOSUB)) {
      bad_setting("control/dynamicptr", pats.s + i, "skipped");
      continue;
    }
    m = regexec(&re, name, 0, 0, 0) == 0;
    regfree(&re);
    if (m) return 1;
  }
  return 0;
}

static void cat2(char *buf, size_t size, const char *a, const char *b)
{
  size_t la = strlen(a), lb = strlen(b);
  if (la + lb >= size) { buf[0] = 0; return; }
  memcpy(buf, a, la);
  memcpy(buf + la, b, lb + 1);
}

/* class_get - NAME_NOPTR / NAME_DYNAMIC for a client of that class when set, else NAME */
static const char *class_get(const char *name, char *buf, size_t size)
{
  const char *x, *p = ptrname();
  if (!p) {
    cat2(buf, size, name, "_NOPTR");
    if ((x = cget(buf))) return x;
  } else {
    cat2(buf, size, name, "_DYNAMIC");
    if ((x = cget(buf)) && dynamic(p)) return x;
  }
  cat2(buf, size, name, "");
  return cget(name);
}

/* ---------------------------------------------------------------- replies */

static struct decision refuse(int code, const char *esc, const char *text, const char *why, int drop)
{
  struct decision d = DECISION_NONE;
  d.code = code; d.esc = esc; d.text = text; d.reason = why; d.drop = (unsigned char)drop;
  return d;
}

static void log_limit(const char *what, const char *key, long level, long limit)
{
  if (!log_on(LOG_INFO)) return;
  log_start("limit");
  log_str("what", what);
  log_clients("key", key);
  log_ulong("count", (unsigned long)level);
  log_ulong("limit", (unsigned long)limit);
  log_end();
}

/* ---------------------------------------------------------------- budget and sleeps */

static long budget(void)
{
  static long b = -2;
  if (b == -2) {
    const char *x = cget("TARPITBUDGET");
    int v = 0;
    b = 0;
    if (x) b = setting_ms("TARPITBUDGET", x, 1, 0);
    else if (control_readint(&v, "control/tarpitbudget") == 1 && v > 0) b = v;
  }
  return b;
}

/* budget_enter - join the sessions sleeping site-wide: 1 joined (or no budget, or the store
 * is down: fail open), 0 the budget is spent */
static char budgetkey[STORE_KEY_MAX + 1];
static int budget_enter(long hold_ms)
{
  static const char *const parts[] = {"t", "budget"};
  struct store_op op[1];
  long b = budget();
  if (!b) return 1;
  store_key(budgetkey, parts, 2);
  memset(op, 0, sizeof op);
  op[0].type = STORE_ENTER; op[0].key = budgetkey; op[0].limit = b;
  op[0].window_s = hold_ms / 1000 + 60;
  if (store_run(op, 1) == -1) return 1;
  if (!op[0].ok) log_limit("tarpitbudget", budgetkey, op[0].level, b);
  return op[0].ok;
}

static void budget_leave(void)
{
  struct store_op op[1];
  if (!budget()) return;
  memset(op, 0, sizeof op);
  op[0].type = STORE_LEAVE; op[0].key = budgetkey;
  store_run(op, 1);
}

int tarpit_sleep(unsigned ms)
{
  if (ms > TARPIT_DELAY_MAX * 1000) ms = TARPIT_DELAY_MAX * 1000;
  if (!budget_enter((long)ms)) return -1;
  io_wait((long)ms, 0);
  budget_leave();
  return 0;
}

int tarpit_errors(const struct session *s)
{
  static long max = -1;
  if (max == -1) max = setting_ms("MAXERRORS", cget("MAXERRORS"), 1, 0);
  return max > 0 && s->nerrors >= (unsigned long)max;
}

/* ---------------------------------------------------------------- connect */

static struct decision conn_limits(void)
{
  struct store_op op[2];
  char k1[STORE_KEY_MAX + 1];
  const char *p1[3] = {"c", 0, "conn"}, *p2[2] = {"k", 0};
  long lim, win;
  int n = 0;
  memset(op, 0, sizeof op);
  if (!cget("CONNRATE") && !cget("CONNMAX")) return DECISION_NONE;
  if (exempt()) return DECISION_NONE;  /* read only now: a plain session opens nothing */
  p1[1] = p2[1] = client();
  if (rate("CONNRATE", &lim, &win)) {
    op[n].type = STORE_TAKE; op[n].key = store_key(k1, p1, 3); op[n].n = 1;
    op[n].limit = lim; op[n].window_s = win; op[n].atonce = 1; ++n;
  }
  if ((lim = setting_ms("CONNMAX", cget("CONNMAX"), 1, 0)) > 0) {
    op[n].type = STORE_ENTER; op[n].key = store_key(conckey, p2, 2); op[n].limit = lim;
    op[n].window_s = setting_ms("MAXSESSIONTIME", cget("MAXSESSIONTIME"), 1000, 3600000) / 1000;
    ++n;
  }
  if (!n || store_run(op, n) == -1) return DECISION_NONE;
  if (op[n - 1].type == STORE_ENTER) joined = op[n - 1].ok;
  if (!op[0].ok) {
    log_limit(op[0].type == STORE_TAKE ? "connrate" : "connmax", op[0].key, op[0].level, op[0].limit);
    return refuse(421, "4.7.0", "too many connections from your address, try again later",
                  op[0].type == STORE_TAKE ? "connrate" : "connmax", 1);
  }
  if (n == 2 && !op[1].ok) {
    log_limit("connmax", op[1].key, op[1].level, op[1].limit);
    return refuse(421, "4.7.0", "too many connections from your address, try again later",
                  "connmax", 1);
  }
  return DECISION_NONE;
}

/* off - "0", "no", "off" (an unset switch is not off) */
static int off(const char *x)
{
  return x && (!case_diffs(x, "0") || !case_diffs(x, "no") || !case_diffs(x, "off"));
}

/* greetdelay - GREETDELAY[_NOPTR|_DYNAMIC] seconds before the banner; facts are looked at
 * again every 200 ms, so a PTR or DNSWL answer that arrives meanwhile counts. Input from the
 * client during the delay (pipelining before the banner) is refused at once. */
static struct decision greetdelay(void)
{
  char buf[64];
  long long start = io_now_ms();
  int sleeping = 0, watch = !getenv("SMTPS");  /* implicit TLS: the client speaks first */
  for (;;) {
    const char *x = class_get("GREETDELAY", buf, sizeof buf);
    long target = setting_ms(buf, x, 1000, 0), left;
    if (!ptrname() && sess->rdns == DNS_UNKNOWN && ptr_pending && ptr_pending()) {
      /* the PTR answer is still to come: the longest delay of any class until it does */
      long t = setting_ms("GREETDELAY_NOPTR", cget("GREETDELAY_NOPTR"), 1000, 0);
      if (t > target) target = t;
      t = setting_ms("GREETDELAY_DYNAMIC", cget("GREETDELAY_DYNAMIC"), 1000, 0);
      if (t > target) target = t;
      t = setting_ms("GREETDELAY", cget("GREETDELAY"), 1000, 0);
      if (t > target) target = t;
    }
    if (target > TARPIT_DELAY_MAX * 1000) target = TARPIT_DELAY_MAX * 1000;
    left = target - (long)(io_now_ms() - start);
    if (left <= 0 || exempt()) break;
    if (!sleeping) {  /* the delay holds a slot: counted in the budget */
      if (!budget_enter(left))
        return refuse(421, "4.7.0", "too busy, try again later", "tarpitbudget", 1);
      sleeping = 1;
    }
    if (io_wait(left > 200 ? 200 : left, watch)) {
      int drop = !off(cget("DROPRUSHGREET"));
      if (log_on(LOG_INFO)) {
        log_start("earlytalker");
        log_str("ip", sess->remoteip);
        log_ulong("after_ms", (unsigned long)(io_now_ms() - start));
        log_str("act", drop ? "refused" : "logged");
        log_end();
      }
      if (!drop) {  /* DROPRUSHGREET=0: logged only; the rest of the delay, then the banner */
        long rest = target - (long)(io_now_ms() - start);
        if (rest > 0) io_wait(rest, 0);
        break;
      }
      if (sleeping) budget_leave();
      {  /* read what it sent: closing on unread input would reset the connection, and the
          * client would never see the 554 */
        char junk[4096];
        while (recv(0, junk, sizeof junk, MSG_DONTWAIT) > 0) {}
        io_discard_input();
      }
      return refuse(554, "5.5.0", "SMTP protocol violation", "earlytalker", 1);
    }
  }
  if (sleeping) budget_leave();
  return DECISION_NONE;
}

struct decision tarpit_connect(struct session *s, void (*expired)(void), int (*pending)(void))
{
  struct decision d;
  char buf[64];
  long v;
  sess = s;
  ptr_pending = pending;
  if (!cget("GREETDELAY") && !cmask) return DECISION_NONE;  /* no client setting at all */
  if ((d = conn_limits()).code) return d;
  if ((d = greetdelay()).code) return d;
  v = setting_ms("MAXSESSIONTIME", class_get("MAXSESSIONTIME", buf, sizeof buf), 1000, 0);
  if (v > 0) io_setlifetime(s->start_ms + v, expired);
  v = setting_ms("THROTTLE", class_get("THROTTLE", buf, sizeof buf), 1, 0);
  if (v > 0) io_setrate((unsigned long)v);
  return DECISION_NONE;
}

/* ---------------------------------------------------------------- MAIL, RCPT */

/* take - the buckets of ops[0..n) in one transaction; the first refused one, or -1 */
static int take(struct store_op *op, int n)
{
  int i;
  if (!n || store_run(op, n) == -1) return -1;
  for (i = 0; i < n; ++i) if (!op[i].ok) return i;
  return -1;
}

static void bucket(struct store_op *op, char *key, const char *const *parts, int np, long lim,
                   long win)
{
  memset(op, 0, sizeof *op);
  op->type = STORE_TAKE; op->key = store_key(key, parts, np); op->n = 1;
  op->limit = lim; op->window_s = win;
}

struct decision tarpit_mail(struct session *s)
{
  static const char *names[] = {"MSGRATE", "MSGRATE_SENDER", "MSGRATE_AUTH"};
  struct store_op op[3];
  char keys[3][STORE_KEY_MAX + 1];
  int i, n = 0;
  sess = s;
  rcptcount = 0;
  header_delay = 0;
  for (i = 0; i < 3; ++i) {
    long lim, win;
    const char *who, *parts[3];
    if (!rate(names[i], &lim, &win)) continue;
    who = i == 0 ? (s->auth_user ? 0 : client()) : i == 1 ? s->rcpt.s : s->auth_user;
    parts[0] = "m"; parts[1] = who; parts[2] = names[i];
    if (!who) continue;
    if (i == 1 && !*who) continue;  /* the null sender has no rate of its own */
    bucket(op + n, keys[n], parts, 3, lim, win);
    ++n;
  }
  if (!n || exempt() || (i = take(op, n)) < 0) return DECISION_NONE;
  log_limit("msgrate", op[i].key, op[i].level, op[i].limit);
  return refuse(450, "4.7.1", "too much mail from you, try again later", "msgrate", 0);
}

struct decision tarpit_rcptmax(struct session *s)
{
  static int maxrcpt = -2;
  const char *x;
  sess = s;
  ++rcptcount;
  if ((x = rules_get("MAXRCPTCOUNT")) && *x) {
    long m = setting_ms("MAXRCPTCOUNT", x, 1, 0);
    if (m > 0 && rcptcount > (unsigned long)m) {
      struct decision d = refuse(553, "5.7.1", "sorry, too many recipients", "maxrcptcount", 0);
      d.qmail = 1;
      return d;
    }
  }
  if (maxrcpt == -2) {
    maxrcpt = -1;
    if (!getenv("DISABLE_MAXRCPT") && control_readint(&maxrcpt, "control/maxrcpt") == -1) {
      bad_setting("control/maxrcpt", "unreadable", "off");
      maxrcpt = -1;
    }
  }
  if (maxrcpt >= 0 && rcptcount > (unsigned)maxrcpt) {
    struct decision d = refuse(452, "5.7.1", "max rcpt limit exceeded", "maxrcpt", 0);
    d.qmail = 1;
    return d;
  }
  return DECISION_NONE;
}

static const char *rcptdomain(const struct session *s)
{
  const char *at = strrchr(s->rcpt.s, '@');
  return at ? at + 1 : "";
}

struct decision tarpit_rates(struct session *s)
{
  static const char *names[] = {"RCPTRATE", "RCPTRATE_SENDER", "RCPTRATE_AUTH", "RCPTRATE_DOMAIN"};
  struct store_op op[5];
  char keys[5][STORE_KEY_MAX + 1];
  long lim, win;
  int i, n = 0, harvest = -1;
  sess = s;
  for (i = 0; i < 4; ++i) {
    const char *who, *parts[3];
    if (!rate(names[i], &lim, &win)) continue;
    who = i == 0 ? (s->auth_user ? 0 : client()) : i == 1 ? s->mailfrom.s :
          i == 2 ? s->auth_user : rcptdomain(s);
    parts[0] = "r"; parts[1] = who; parts[2] = names[i];
    if (!who || !*who) continue;
    bucket(op + n, keys[n], parts, 3, lim, win);
    ++n;
  }
  if (!s->auth_user && rate("BADRCPTRATE", &lim, &win)) {
    const char *parts[2] = {"u", client()};
    bucket(op + n, keys[n], parts, 2, lim, win);
    op[n].type = STORE_PEEK;
    harvest = n++;
  }
  if (!n || exempt() || (i = take(op, n)) < 0) return DECISION_NONE;
  if (i == harvest) {
    log_limit("badrcptrate", op[i].key, op[i].level, op[i].limit);
    return refuse(421, "4.7.0", "too many unknown recipients, closing connection", "badrcptrate", 1);
  }
  log_limit("rcptrate", op[i].key, op[i].level, op[i].limit);
  return refuse(450, "4.7.1", "too many recipients from you, try again later", "rcptrate", 0);
}

void tarpit_rcpt_refused(struct session *s, const struct decision *d)
{
  struct store_op op[1];
  char key[STORE_KEY_MAX + 1];
  long lim, win;
  const char *parts[2];
  sess = s;
  if (!d->reason || strncmp(d->reason, "nouser", 6) || s->auth_user) return;
  if (!rate("BADRCPTRATE", &lim, &win) || exempt()) return;
  parts[0] = "u"; parts[1] = client();
  bucket(op, key, parts, 2, lim, win);
  op[0].type = STORE_ADD;
  op[0].atonce = 1;  /* a guesser with parallel connections must see it at once */
  store_run(op, 1);
}

struct decision tarpit_auth(struct session *s)
{
  struct store_op op[1];
  char key[STORE_KEY_MAX + 1];
  const char *parts[2] = {"a", 0};
  long lim, win;
  sess = s;
  if (!rate("AUTHFAILRATE", &lim, &win) || exempt()) return DECISION_NONE;
  parts[1] = client();
  bucket(op, key, parts, 2, lim, win);
  op[0].type = STORE_PEEK;
  if (take(op, 1) < 0) return DECISION_NONE;
  log_limit("authfailrate", key, op[0].level, lim);
  return refuse(421, "4.7.0", "too many failed authentications, try again later", "authfailrate", 1);
}

void tarpit_auth_failed(struct session *s)
{
  struct store_op op[1];
  char key[STORE_KEY_MAX + 1];
  const char *parts[2] = {"a", 0};
  long lim, win;
  sess = s;
  if (!rate("AUTHFAILRATE", &lim, &win) || exempt()) return;
  parts[1] = client();
  bucket(op, key, parts, 2, lim, win);
  op[0].type = STORE_ADD;
  op[0].atonce = 1;  /* a guesser with parallel connections must see it at once */
  store_run(op, 1);
}

/* tarpit_delay_ms - TARPITDELAY for the n-th counted recipient: seconds, or the qmail-spp
 * tarpit plugin's words N (+2 s a recipient), M (+5 s), H (square); another word is logged
 * and the default 5 s used (qmail-ldap's scan_ulong read it as 0, silently off) */
static long tarpit_delay_ms(unsigned n)
{
  const char *x = rules_get("TARPITDELAY");
  long v;
  if (!x || !*x) return 5000;
  if ((v = tarpit_parse_ms(x, 1000)) >= 0) return v;
  if (!case_diffs(x, "N")) return 2000L * n;
  if (!case_diffs(x, "M")) return 5000L * n;
  if (!case_diffs(x, "H")) return 1000L * n * n;
  bad_setting("TARPITDELAY", x, "5");
  return 5000;
}

struct decision tarpit_rcpt_ok(struct session *s)
{
  const char *x = rules_get("TARPITCOUNT");
  long count, ms;
  sess = s;
  if (!x || !*x || (count = setting_ms("TARPITCOUNT", x, 1, 0)) <= 0) return DECISION_NONE;
  if (rcptcount < (unsigned long)count || exempt()) return DECISION_NONE;
  ms = tarpit_delay_ms(rcptcount - (unsigned)count + 1);
  if (ms <= 0) return DECISION_NONE;
  if (tarpit_sleep((unsigned)ms) == -1)
    return refuse(451, "4.7.1", "too many recipients at once, try again later", "tarpitbudget", 0);
  return DECISION_NONE;
}

/* ---------------------------------------------------------------- greylisting */


const char *tarpit_header(void)
{
  static char h[320];
  const char *local = sess && sess->local ? sess->local : "unknown";
  long d = header_delay;
  size_t n;
  header_delay = 0;
  if (d <= 0) return 0;
  n = (size_t)snprintf(h, sizeof h, "X-Greylist: delayed %ld seconds by mxguard-smtpd at ", d);
  for (; *local && n + 2 < sizeof h; ++local)  /* our own name, but keep the header clean */
    h[n++] = (*local > 32 && *local < 127) ? *local : '_';
  h[n++] = '\n';
  h[n] = 0;
  return h;
}

/* tarpit_grey_sender - postgrey: lower case, BATV prvs= tag and +extension removed, every
 * run of digits (VERP) written # */
void tarpit_grey_sender(char *out, size_t size, const char *addr)
{
  const char *at = strrchr(addr, '@'), *local = addr, *end;
  size_t n = 0;
  if (!case_diffb(addr, 5, "prvs=") || !case_diffb(addr, 5, "msprvs")) {
    const char *eq = strchr(addr + 5, '=');
    if (eq && (!at || eq < at)) local = eq + 1;
  }
  end = at ? at : local + strlen(local);
  if (size == 0) return;
  for (; local < end && n + 1 < size; ++local) {
    if (*local == '+') { local = end; break; }
    if (*local >= '0' && *local <= '9') {
      out[n++] = '#';
      while (local + 1 < end && local[1] >= '0' && local[1] <= '9') ++local;
    } else out[n++] = (char)((*local >= 'A' && *local <= 'Z') ? *local + 32 : *local);
  }
  for (local = end; *local && n + 1 < size; ++local)
    out[n++] = (char)((*local >= 'A' && *local <= 'Z') ? *local + 32 : *local);
  out[n] = 0;
}

static int on(const char *x) { return x && !off(x); }

struct decision tarpit_greylist(struct session *s)
{
  static char text[96];
  struct store_grey g;
  char net[64], from[STORE_KEY_MAX + 1], to[STORE_KEY_MAX + 1];
  char kt[STORE_KEY_MAX + 1], kc[STORE_KEY_MAX + 1];
  const char *pt[4], *pc[3];
  long left, delayed;
  size_t i;
  sess = s;
  if (!on(rules_get("GREYLIST")) || s->auth_user || exempt()) return DECISION_NONE;
  g.delay_s = setting_ms("GREYLISTDELAY", rules_get("GREYLISTDELAY"), 1000, 300000) / 1000;
  g.retry_s = setting_ms("GREYLISTRETRY", rules_get("GREYLISTRETRY"), 1000, 172800000) / 1000;
  g.expire_s = setting_ms("GREYLISTEXPIRE", rules_get("GREYLISTEXPIRE"), 1000, 3024000000L) / 1000;
  g.autoallow = setting_ms("GREYLISTAUTOALLOW", rules_get("GREYLISTAUTOALLOW"), 1, 5);
  if (g.retry_s < g.delay_s) g.retry_s = g.delay_s + 60;
  if (tarpit_net(net, sizeof net, s->remoteip, 24, 64) == -1) return DECISION_NONE;
  tarpit_grey_sender(from, sizeof from, s->mailfrom.s);
  for (i = 0; s->rcpt.s[i] && i + 1 < sizeof to; ++i)
    to[i] = (char)((s->rcpt.s[i] >= 'A' && s->rcpt.s[i] <= 'Z') ? s->rcpt.s[i] + 32 : s->rcpt.s[i]);
  to[i] = 0;
  pt[0] = "g"; pt[1] = net; pt[2] = from; pt[3] = to;
  pc[0] = "w"; pc[1] = net; pc[2] = s->remoteip;
  left = store_greylist(store_key(kt, pt, 4), store_key(kc, pc, 3), &g, &delayed);
  if (delayed > 0 && on(rules_get("GREYLISTHEADER")) && delayed > header_delay)
    header_delay = delayed;
  if (left <= 0) return DECISION_NONE;  /* passed, or the store is down: fail open */
  snprintf(text, sizeof text, "greylisted, try again in %ld seconds", left);
  return refuse(451, "4.7.1", text, "greylist", 0);
}

/* ---------------------------------------------------------------- end */

void tarpit_end(void)
{
  if (joined) {
    struct store_op op[1];
    memset(op, 0, sizeof op);
    op[0].type = STORE_LEAVE;
    op[0].key = conckey;
    joined = 0;
    store_run(op, 1);
  }
  store_close();
}
