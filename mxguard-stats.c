/* mxguard-stats - pflogsumm for mxguard-smtpd's log: reads multilog (@tai64n), svlogd (-tt)
 * and unstamped lines from files or stdin in one pass, in constant memory, and reports
 * sessions, messages, recipients accepted and refused, refusals by reason (observe-mode counts
 * beside the real ones), DNSBL hits per list, recipient-check results per backend, content
 * verdicts, errors, top clients / networks / senders / refused recipients, latency percentiles
 * of the sessions (event=end ms=), per day and per hour. --html FILE also writes one
 * self-contained XHTML page with inline SVG charts (no script, no network).
 *
 * Bounds: a line is cut at LINE_MAX_ bytes; reasons, lists, backends and verdicts are exact up
 * to NAMES_MAX distinct names each (more are counted as "other"); top lists keep TOPK counters
 * (the space-saving algorithm: a count may be over by at most the "err" shown); per-hour
 * counts cover HOURS_MAX hours from the first stamp seen (per-day counts DAYS_MAX days); the
 * latency histogram has 128 buckets per power of two (under 1% error). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <sys/stat.h>
#include "version.h"

#define LINE_MAX_ 4096
#define NAMES_MAX 64
#define TOPK 1000
#define TOPN 10
#define HOURS_MAX (24 * 400)
#define DAYS_MAX 4000
#define SERIES 8  /* reasons drawn separately in the stacked chart; the rest is "other" */

/* ---- small exact name tables */
struct names {
  int n;
  char name[NAMES_MAX + 1][64];
  uint64_t a[NAMES_MAX + 1], b[NAMES_MAX + 1];  /* two counters per name */
};
static int name_id(struct names *t, const char *s, size_t len)
{
  int i;
  if (len > 63) len = 63;
  for (i = 0; i < t->n; ++i)
    if (!strncmp(t->name[i], s, len) && !t->name[i][len]) return i;
  if (t->n == NAMES_MAX) {
    strcpy(t->name[NAMES_MAX], "other");
    return NAMES_MAX;
  }
  memcpy(t->name[t->n], s, len);
  t->name[t->n][len] = 0;
  return t->n++;
}

/* ---- space-saving top-k: a hash of the keys and a min-heap of the counts */
#define KEYMAX 80
struct tent { char key[KEYMAX]; uint64_t count, err; int heap, next; };
struct topk {
  struct tent e[TOPK];
  int heap[TOPK], n;
  int bucket[4096];
};
static unsigned hash(const char *s, size_t len)
{
  unsigned h = 5381;
  while (len--) h = ((h << 5) + h) ^ (unsigned char)*s++;
  return h;
}
static void tk_swap(struct topk *t, int i, int j)
{
  int x = t->heap[i];
  t->heap[i] = t->heap[j]; t->heap[j] = x;
  t->e[t->heap[i]].heap = i; t->e[t->heap[j]].heap = j;
}
static void tk_down(struct topk *t, int i)
{
  for (;;) {
    int l = 2 * i + 1, r = l + 1, m = i;
    if (l < t->n && t->e[t->heap[l]].count < t->e[t->heap[m]].count) m = l;
    if (r < t->n && t->e[t->heap[r]].count < t->e[t->heap[m]].count) m = r;
    if (m == i) return;
    tk_swap(t, i, m);
    i = m;
  }
}
static void tk_init(struct topk *t)
{
  t->n = 0;
  memset(t->bucket, -1, sizeof t->bucket);
}
static void tk_unlink(struct topk *t, int idx)
{
  unsigned b = hash(t->e[idx].key, strlen(t->e[idx].key)) & 4095;
  int *p = &t->bucket[b];
  while (*p != -1 && *p != idx) p = &t->e[*p].next;
  if (*p == idx) *p = t->e[idx].next;
}
static void tk_add(struct topk *t, const char *key, size_t len)
{
  unsigned b;
  int i;
  if (!len) return;
  if (len >= KEYMAX) len = KEYMAX - 1;
  b = hash(key, len) & 4095;
  for (i = t->bucket[b]; i != -1; i = t->e[i].next)
    if (!strncmp(t->e[i].key, key, len) && !t->e[i].key[len]) {
      ++t->e[i].count;
      tk_down(t, t->e[i].heap);
      return;
    }
  if (t->n < TOPK) {
    i = t->n;
    t->e[i].count = 1; t->e[i].err = 0;
    t->heap[t->n] = i; t->e[i].heap = t->n++;
    /* a new count of 1 is the smallest: sift up */
    {
      int h = t->e[i].heap;
      while (h && t->e[t->heap[(h - 1) / 2]].count > t->e[t->heap[h]].count) { tk_swap(t, h, (h - 1) / 2); h = (h - 1) / 2; }
    }
  } else {
    i = t->heap[0];  /* evict the smallest: the newcomer inherits its count */
    tk_unlink(t, i);
    t->e[i].err = t->e[i].count;
    ++t->e[i].count;
  }
  memcpy(t->e[i].key, key, len);
  t->e[i].key[len] = 0;
  t->e[i].next = t->bucket[b];
  t->bucket[b] = i;
  tk_down(t, t->e[i].heap);
}
/* tk_top - the indexes of the n biggest, biggest first */
static int tk_top(struct topk *t, int *out, int n)
{
  int i, j, k = 0;
  for (i = 0; i < t->n; ++i) {
    if (k < n) j = k++;
    else if (t->e[i].count > t->e[out[n - 1]].count) j = n - 1;
    else continue;
    out[j] = i;
    for (; j && t->e[out[j]].count > t->e[out[j - 1]].count; --j) { int x = out[j]; out[j] = out[j - 1]; out[j - 1] = x; }
  }
  return k;
}

/* ---- latency histogram */
#define HBUCKETS (1024 + 30 * 128)
static uint64_t hist[HBUCKETS], nlat, maxlat;
static int hb(uint64_t v)
{
  int e = 63 - __builtin_clzll(v | 1);
  if (v < 1024) return (int)v;
  if (e > 39) return HBUCKETS - 1;
  return 1024 + (e - 10) * 128 + (int)((v >> (e - 7)) & 127);
}
static uint64_t hb_low(int b)
{
  int e;
  if (b < 1024) return (uint64_t)b;
  e = (b - 1024) / 128 + 10;
  return ((uint64_t)1 << e) + ((uint64_t)((b - 1024) % 128) << (e - 7));
}
static uint64_t percentile(double p)
{
  uint64_t want = (uint64_t)(p * (double)nlat + 0.999999), seen = 0;
  int b;
  if (!nlat) return 0;
  if (want < 1) want = 1;
  for (b = 0; b < HBUCKETS; ++b)
    if ((seen += hist[b]) >= want) return hb_low(b);
  return maxlat;
}

/* ---- the counts */
static uint64_t nlines, nours, sessions, ended, messages, msgbytes, rcpt_ok, rcpt_bad, refusals, observes;
static uint64_t defers, rejects;
static struct names reasons, rulenames, lists, backends, verdicts, errors;  /* a: real, b: observe/other */
static struct topk *clients, *nets, *senders, *rcpts;
static long long first_hour = -1, first_day = -1, tmin = -1, tmax = -1;
static long long since = -1, until = -1;
struct hour { uint32_t sessions, accepted, refused, reason[SERIES + 1]; };
static struct hour *hours;
static int nhours;
struct day { uint32_t sessions, accepted, refused, rcpt_ok; };
static struct day *days;
static int ndays;
static uint64_t beyond;  /* stamped lines outside the per-hour window */
static int reason_series[NAMES_MAX + 1];  /* reason id -> series (first SERIES reasons seen) */
static int nseries;

/* ---- time stamps */
static int hexv(int c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; }
static long long days_from_civil(int y, int m, int d)
{
  y -= m <= 2;
  {
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (unsigned)((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1);
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
  }
}
static int num(const char *s, int n)
{
  int v = 0;
  while (n--) { if (*s < '0' || *s > '9') return -1; v = v * 10 + (*s++ - '0'); }
  return v;
}
/* stamp - the seconds of a leading stamp and its length, or -1 */
static long long stamp(const char *l, size_t len, size_t *skip)
{
  *skip = 0;
  if (len > 26 && l[0] == '@' && l[25] == ' ') {
    unsigned long long s = 0;
    int i, v;
    for (i = 1; i <= 16; ++i) { if ((v = hexv(l[i])) < 0) return -1; s = s * 16 + (unsigned)v; }
    for (i = 17; i < 25; ++i) if (hexv(l[i]) < 0) return -1;
    *skip = 26;
    return (long long)(s - 4611686018427387914ULL);  /* 2^62 + 10 (TAI - UTC) */
  }
  if (len > 26 && l[4] == '-' && l[7] == '-' && l[10] == '_' && l[13] == ':' && l[16] == ':' &&
      l[19] == '.' && l[25] == ' ') {
    int y = num(l, 4), mo = num(l + 5, 2), d = num(l + 8, 2), h = num(l + 11, 2), mi = num(l + 14, 2),
        se = num(l + 17, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || mi < 0 || se < 0) return -1;
    *skip = 26;
    return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
  }
  return -1;
}

/* ---- one log line */
struct field { const char *k; size_t kl; const char *v; size_t vl; };
#define FIELDS 32
static int fields(const char *p, const char *end, struct field *f)
{
  int n = 0;
  while (p < end && n < FIELDS) {
    const char *eq = p;
    while (eq < end && *eq != '=' && *eq != ' ') ++eq;
    if (eq >= end || *eq != '=') return n;
    f[n].k = p; f[n].kl = (size_t)(eq - p);
    p = eq + 1;
    if (p < end && *p == '"') {
      const char *q = memchr(p + 1, '"', (size_t)(end - p - 1));
      if (!q) q = end;
      f[n].v = p + 1; f[n].vl = (size_t)(q - p - 1);
      p = q + 1;
    } else {
      const char *q = memchr(p, ' ', (size_t)(end - p));
      if (!q) q = end;
      f[n].v = p; f[n].vl = (size_t)(q - p);
      p = q;
    }
    ++n;
    while (p < end && *p == ' ') ++p;
  }
  return n;
}
static const struct field *get(const struct field *f, int n, const char *k)
{
  size_t kl = strlen(k);
  int i;
  for (i = 0; i < n; ++i)
    if (f[i].kl == kl && !memcmp(f[i].k, k, kl)) return &f[i];
  return 0;
}
static int is(const struct field *f, const char *s) { return f && f->vl == strlen(s) && !memcmp(f->v, s, f->vl); }
static uint64_t uval(const struct field *f)
{
  uint64_t u = 0;
  size_t i;
  if (!f) return 0;
  for (i = 0; i < f->vl && f->v[i] >= '0' && f->v[i] <= '9'; ++i) u = u * 10 + (uint64_t)(f->v[i] - '0');
  return u;
}

static struct hour *hour_at(long long t)
{
  long long h;
  if (t < 0) return 0;
  h = t / 3600;
  if (first_hour < 0) first_hour = h;
  if (h < first_hour || h - first_hour >= HOURS_MAX) { ++beyond; return 0; }
  if (h - first_hour >= nhours) nhours = (int)(h - first_hour) + 1;
  return &hours[h - first_hour];
}
static struct day *day_at(long long t)
{
  long long d;
  if (t < 0) return 0;
  d = t / 86400;
  if (first_day < 0) first_day = d;
  if (d < first_day || d - first_day >= DAYS_MAX) return 0;
  if (d - first_day >= ndays) ndays = (int)(d - first_day) + 1;
  return &days[d - first_day];
}

/* network - the client's /24 (IPv4) or /48 (IPv6) into the networks list */
static void network(const struct field *ip)
{
  char a[64], out[INET6_ADDRSTRLEN + 4];
  unsigned char b[16];
  size_t n;
  if (!ip || ip->vl >= sizeof a) return;
  memcpy(a, ip->v, ip->vl);
  a[ip->vl] = 0;
  if (inet_pton(AF_INET, a, b) == 1) {
    b[3] = 0;
    if (!inet_ntop(AF_INET, b, out, sizeof out)) return;
    strcat(out, "/24");
  } else if (inet_pton(AF_INET6, a, b) == 1) {
    memset(b + 6, 0, 10);
    if (!inet_ntop(AF_INET6, b, out, sizeof out)) return;
    strcat(out, "/48");
  } else
    return;
  n = strlen(out);
  tk_add(nets, out, n);
}

static void line(const char *l, size_t len)
{
  size_t skip;
  long long t = stamp(l, len, &skip);
  const char *p = l + skip, *end = l + len;
  struct field f[FIELDS];
  const struct field *ev, *x;
  int n;
  struct hour *h;
  struct day *d;
  ++nlines;
  if (end - p < 12 || memcmp(p, "pid=", 4)) return;
  if (since >= 0 && t >= 0 && t < since) return;
  if (until >= 0 && t >= 0 && t >= until) return;
  n = fields(p, end, f);
  if (!(ev = get(f, n, "event"))) return;
  ++nours;
  if (t >= 0) { if (tmin < 0 || t < tmin) tmin = t; if (t > tmax) tmax = t; }
  h = hour_at(t);
  d = day_at(t);
  if (is(ev, "connect")) {
    ++sessions;
    if (h) ++h->sessions;
    if (d) ++d->sessions;
    if ((x = get(f, n, "ip"))) { tk_add(clients, x->v, x->vl); network(x); }
  } else if (is(ev, "end")) {
    uint64_t ms = uval(get(f, n, "ms")), ok = uval(get(f, n, "rcpt_ok"));
    ++ended;
    rcpt_ok += ok;
    rcpt_bad += uval(get(f, n, "rcpt_bad"));
    if (d) d->rcpt_ok += (uint32_t)ok;
    ++hist[hb(ms)];
    ++nlat;
    if (ms > maxlat) maxlat = ms;
  } else if (is(ev, "accept")) {
    ++messages;
    msgbytes += uval(get(f, n, "size"));
    if (h) ++h->accepted;
    if (d) ++d->accepted;
    if ((x = get(f, n, "from"))) tk_add(senders, x->v, x->vl);
  } else if (is(ev, "reject") || is(ev, "defer") || is(ev, "observe")) {
    int obs = is(ev, "observe"), id;
    if ((x = get(f, n, "rule"))) {  /* the rules engine names the rule that decided */
      int r = name_id(&rulenames, x->v, x->vl);
      if (obs) ++rulenames.b[r]; else ++rulenames.a[r];
    }
    x = get(f, n, "reason");
    id = name_id(&reasons, x ? x->v : "unknown", x ? x->vl : 7);
    if (obs) { ++reasons.b[id]; ++observes; }
    else {
      ++reasons.a[id];
      ++refusals;
      if (ev->v[0] == 'd') ++defers; else ++rejects;
      if (h) {
        if (!reason_series[id] && nseries < SERIES) reason_series[id] = ++nseries;
        ++h->refused;
        ++h->reason[reason_series[id] ? reason_series[id] - 1 : SERIES];
      }
      if (d) ++d->refused;
      if (x && x->vl > 7 && !memcmp(x->v, "nouser:", 7)) ++backends.a[name_id(&backends, x->v + 7, x->vl - 7)];
      if ((x = get(f, n, "to")) && is(get(f, n, "cmd"), "RCPT")) tk_add(rcpts, x->v, x->vl);
    }
  } else if (is(ev, "dns")) {
    const char *s, *e;
    if ((x = get(f, n, "dnsbl")))
      for (s = x->v, e = x->v + x->vl; s < e; ) {
        const char *c = memchr(s, ',', (size_t)(e - s)), *colon;
        if (!c) c = e;
        colon = memchr(s, ':', (size_t)(c - s));
        ++lists.a[name_id(&lists, s, (size_t)((colon ? colon : c) - s))];
        s = c + 1;
      }
    if ((x = get(f, n, "dnsbl_fail")))
      for (s = x->v, e = x->v + x->vl; s < e; ) {
        const char *c = memchr(s, ',', (size_t)(e - s));
        if (!c) c = e;
        ++lists.b[name_id(&lists, s, (size_t)(c - s))];
        s = c + 1;
      }
  } else if (is(ev, "error")) {
    x = get(f, n, "reason");
    ++errors.a[name_id(&errors, x ? x->v : "unknown", x ? x->vl : 7)];
    if (is(x, "valuser") && (x = get(f, n, "backend"))) ++backends.b[name_id(&backends, x->v, x->vl)];
  }
  if ((x = get(f, n, "verdict"))) ++verdicts.a[name_id(&verdicts, x->v, x->vl)];
}

/* ---- input: big reads, lines cut at LINE_MAX_ */
static void input(int fd, const char *name)
{
  static char buf[1 << 20];
  size_t have = 0;
  int skipping = 0;
  for (;;) {
    ssize_t r = read(fd, buf + have, sizeof buf - have);
    char *p, *e, *nl;
    if (r < 0) { if (errno == EINTR) continue; fprintf(stderr, "mxguard-stats: %s: %s\n", name, strerror(errno)); exit(111); }
    if (r == 0) { if (have && !skipping) line(buf, have); return; }
    p = buf; e = buf + have + (size_t)r;
    while ((nl = memchr(p, '\n', (size_t)(e - p)))) {
      if (!skipping) line(p, (size_t)(nl - p) > LINE_MAX_ ? LINE_MAX_ : (size_t)(nl - p));
      skipping = 0;
      p = nl + 1;
    }
    have = (size_t)(e - p);
    if (have > LINE_MAX_) {  /* a long line: count what we have, skip to its end */
      if (!skipping) line(p, LINE_MAX_);
      skipping = 1;
      have = 0;
    } else
      memmove(buf, p, have);
  }
}

/* ---- output */
static const char *when(long long t, char *buf, size_t size)
{
  time_t tt = (time_t)t;
  struct tm tm;
  if (t < 0) return "-";
  gmtime_r(&tt, &tm);
  strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

static void text_top(FILE *o, const char *title, struct topk *t)
{
  int idx[TOPN], k = tk_top(t, idx, TOPN), i;
  fprintf(o, "\n%s\n", title);
  if (!k) fprintf(o, "  (none)\n");
  for (i = 0; i < k; ++i) {
    fprintf(o, "  %10llu  %s", (unsigned long long)t->e[idx[i]].count, t->e[idx[i]].key);
    if (t->e[idx[i]].err) fprintf(o, "  (err %llu)", (unsigned long long)t->e[idx[i]].err);
    fputc('\n', o);
  }
}

static void text(FILE *o)
{
  char a[32], b[32];
  int i;
  fprintf(o, "mxguard-stats %s: %llu lines, %llu from mxguard-smtpd, %s .. %s UTC\n\n", mxguard_version,
          (unsigned long long)nlines, (unsigned long long)nours, when(tmin, a, sizeof a), when(tmax, b, sizeof b));
  fprintf(o, "  %10llu  sessions\n", (unsigned long long)sessions);
  fprintf(o, "  %10llu  messages accepted (%llu bytes)\n", (unsigned long long)messages, (unsigned long long)msgbytes);
  fprintf(o, "  %10llu  recipients accepted\n", (unsigned long long)rcpt_ok);
  fprintf(o, "  %10llu  recipients refused\n", (unsigned long long)rcpt_bad);
  fprintf(o, "  %10llu  refusals (%llu reject, %llu defer)\n", (unsigned long long)refusals,
          (unsigned long long)rejects, (unsigned long long)defers);
  fprintf(o, "  %10llu  observed (would have refused)\n", (unsigned long long)observes);
  fprintf(o, "\nrefusals by reason        real    observe\n");
  for (i = 0; i <= NAMES_MAX; ++i)
    if (i < reasons.n || (i == NAMES_MAX && (reasons.a[i] || reasons.b[i])))
      fprintf(o, "  %-20s %8llu %10llu\n", reasons.name[i], (unsigned long long)reasons.a[i], (unsigned long long)reasons.b[i]);
  fprintf(o, "\nrefusals by rule          real    observe\n");
  for (i = 0; i <= NAMES_MAX; ++i)
    if (i < rulenames.n || (i == NAMES_MAX && (rulenames.a[i] || rulenames.b[i])))
      fprintf(o, "  %-20s %8llu %10llu\n", rulenames.name[i], (unsigned long long)rulenames.a[i], (unsigned long long)rulenames.b[i]);
  fprintf(o, "\nDNSBL lists               hits   failures\n");
  for (i = 0; i <= NAMES_MAX; ++i)
    if (i < lists.n || (i == NAMES_MAX && (lists.a[i] || lists.b[i])))
      fprintf(o, "  %-20s %8llu %10llu\n", lists.name[i], (unsigned long long)lists.a[i], (unsigned long long)lists.b[i]);
  fprintf(o, "\nrecipient check by backend  no-such-user  temp-failure\n");
  for (i = 0; i <= NAMES_MAX; ++i)
    if (i < backends.n || (i == NAMES_MAX && (backends.a[i] || backends.b[i])))
      fprintf(o, "  %-20s %14llu %13llu\n", backends.name[i], (unsigned long long)backends.a[i], (unsigned long long)backends.b[i]);
  fprintf(o, "\ncontent verdicts\n");
  for (i = 0; i <= NAMES_MAX; ++i)
    if (i < verdicts.n || (i == NAMES_MAX && verdicts.a[i]))
      fprintf(o, "  %-20s %8llu\n", verdicts.name[i], (unsigned long long)verdicts.a[i]);
  fprintf(o, "\nerrors by reason\n");
  for (i = 0; i <= NAMES_MAX; ++i)
    if (i < errors.n || (i == NAMES_MAX && errors.a[i]))
      fprintf(o, "  %-20s %8llu\n", errors.name[i], (unsigned long long)errors.a[i]);
  fprintf(o, "\nsession duration (ms)  p50 %llu  p90 %llu  p99 %llu  max %llu  (%llu sessions)\n",
          (unsigned long long)percentile(0.5), (unsigned long long)percentile(0.9),
          (unsigned long long)percentile(0.99), (unsigned long long)maxlat, (unsigned long long)nlat);
  text_top(o, "top clients", clients);
  text_top(o, "top networks", nets);
  text_top(o, "top senders (accepted messages)", senders);
  text_top(o, "top refused recipients", rcpts);
  fprintf(o, "\nper day       sessions  accepted   refused  rcpt_ok\n");
  for (i = 0; i < ndays; ++i) {
    char buf[32];
    if (!days[i].sessions && !days[i].accepted && !days[i].refused) continue;
    strftime(buf, sizeof buf, "%Y-%m-%d", gmtime(&(time_t){(time_t)((first_day + i) * 86400)}));
    fprintf(o, "  %s %9u %9u %9u %8u\n", buf, days[i].sessions, days[i].accepted, days[i].refused, days[i].rcpt_ok);
  }
  fprintf(o, "\nper hour (UTC)     sessions  accepted   refused\n");
  for (i = 0; i < nhours; ++i) {
    char buf[32];
    if (!hours[i].sessions && !hours[i].accepted && !hours[i].refused) continue;
    strftime(buf, sizeof buf, "%Y-%m-%d %H:00", gmtime(&(time_t){(time_t)((first_hour + i) * 3600)}));
    fprintf(o, "  %s %9u %9u %9u\n", buf, hours[i].sessions, hours[i].accepted, hours[i].refused);
  }
  if (beyond) fprintf(o, "  (%llu lines outside the %d hours shown)\n", (unsigned long long)beyond, HOURS_MAX);
}

static void xml(FILE *o, const char *s)
{
  for (; *s; ++s) {
    unsigned char c = (unsigned char)*s;
    if (c == '&') fputs("&amp;", o);
    else if (c == '<') fputs("&lt;", o);
    else if (c == '>') fputs("&gt;", o);
    else if (c == '"') fputs("&quot;", o);
    else if (c < 32 || c > 126) fprintf(o, "&#%u;", c < 32 ? 0xfffd : c);
    else fputc(c, o);
  }
}

static const char *const colour[SERIES + 1] = {"#c0392b", "#2980b9", "#27ae60", "#8e44ad", "#d35400",
  "#16a085", "#f1c40f", "#7f8c8d", "#34495e"};

/* the hours with anything in them, at most 24*31 of them (the latest) for the charts */
static int chart_range(int *from)
{
  int last = nhours - 1, first;
  while (last >= 0 && !hours[last].sessions && !hours[last].accepted && !hours[last].refused) --last;
  first = last - 24 * 31 + 1;
  if (first < 0) first = 0;
  while (first < last && !hours[first].sessions && !hours[first].accepted && !hours[first].refused) ++first;
  *from = first;
  return last < 0 ? 0 : last - first + 1;
}

static void hour_label(char *buf, size_t size, int i)
{
  strftime(buf, size, "%Y-%m-%d %H:00", gmtime(&(time_t){(time_t)((first_hour + i) * 3600)}));
}

static void svg_hours(FILE *o, int stacked)
{
  int from, n = chart_range(&from), i, s;
  uint32_t max = 1;
  double W = 800, H = 240, bw;
  char lab[32];
  if (!n) { fputs("<p>No time stamps: no chart over time.</p>\n", o); return; }
  for (i = 0; i < n; ++i) {
    struct hour *h = &hours[from + i];
    uint32_t m = stacked ? h->refused : (h->accepted > h->refused ? h->accepted : h->refused);
    if (m > max) max = m;
  }
  bw = (W - 60) / n;
  fprintf(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" class=\"%s\">\n",
          W, H + 40, stacked ? "refusals-by-reason" : "accepted-vs-refused");
  fprintf(o, "<line x1=\"50\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#444\"/>\n", H, W - 10, H);
  fprintf(o, "<text x=\"45\" y=\"12\" text-anchor=\"end\" font-size=\"10\">%u</text>\n", max);
  fprintf(o, "<text x=\"45\" y=\"%.0f\" text-anchor=\"end\" font-size=\"10\">0</text>\n", H);
  for (i = 0; i < n; ++i) {
    struct hour *h = &hours[from + i];
    double x = 50 + i * bw, y = H;
    hour_label(lab, sizeof lab, from + i);
    if (stacked) {
      for (s = 0; s <= SERIES; ++s) {
        double hh = h->reason[s] * (H - 10) / max;
        const char *name = "other";
        int r;
        if (!h->reason[s]) continue;
        for (r = 0; r <= NAMES_MAX; ++r) if (reason_series[r] == s + 1) name = reasons.name[r];
        y -= hh;
        fprintf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" data-hour=\"%s\" data-series=\"",
                x, y, bw * 0.9, hh, colour[s], lab);
        xml(o, name);
        fprintf(o, "\" data-value=\"%u\"><title>%s ", h->reason[s], lab);
        xml(o, name);
        fprintf(o, ": %u</title></rect>\n", h->reason[s]);
      }
    } else {
      uint32_t v[2] = {h->accepted, h->refused};
      for (s = 0; s < 2; ++s) {
        double hh = v[s] * (H - 10) / max;
        fprintf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" data-hour=\"%s\" "
                "data-series=\"%s\" data-value=\"%u\"><title>%s %s: %u</title></rect>\n",
                x + s * bw * 0.45, H - hh, bw * 0.45, hh, s ? "#c0392b" : "#27ae60", lab,
                s ? "refused" : "accepted", v[s], lab, s ? "refused" : "accepted", v[s]);
      }
    }
  }
  hour_label(lab, sizeof lab, from);
  fprintf(o, "<text x=\"50\" y=\"%.0f\" font-size=\"10\">%s</text>\n", H + 14, lab);
  hour_label(lab, sizeof lab, from + n - 1);
  fprintf(o, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\" font-size=\"10\">%s</text>\n", W - 10, H + 14, lab);
  /* legend */
  if (stacked) {
    int r, k = 0;
    for (s = 0; s <= SERIES; ++s) {
      const char *name = s == SERIES ? "other" : 0;
      for (r = 0; r <= NAMES_MAX && !name; ++r) if (reason_series[r] == s + 1) name = reasons.name[r];
      if (!name) continue;
      fprintf(o, "<rect x=\"%d\" y=\"%.0f\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%d\" y=\"%.0f\" font-size=\"10\">",
              50 + k * 95, H + 22, colour[s], 63 + k * 95, H + 31);
      xml(o, name);
      fputs("</text>\n", o);
      ++k;
    }
  } else
    fprintf(o, "<rect x=\"50\" y=\"%.0f\" width=\"10\" height=\"10\" fill=\"#27ae60\"/><text x=\"63\" y=\"%.0f\" font-size=\"10\">accepted</text>"
            "<rect x=\"150\" y=\"%.0f\" width=\"10\" height=\"10\" fill=\"#c0392b\"/><text x=\"163\" y=\"%.0f\" font-size=\"10\">refused</text>\n",
            H + 22, H + 31, H + 22, H + 31);
  fputs("</svg>\n", o);
}

/* accepted and refused per day, the last 366 days with anything in them */
static void svg_days(FILE *o)
{
  int last = ndays - 1, first, n, i, k;
  uint32_t max = 1;
  double W = 800, H = 200, bw;
  char lab[32];
  while (last >= 0 && !days[last].accepted && !days[last].refused && !days[last].sessions) --last;
  if (last < 1) return;
  first = last - 365 < 0 ? 0 : last - 365;
  n = last - first + 1;
  for (i = first; i <= last; ++i) {
    if (days[i].accepted > max) max = days[i].accepted;
    if (days[i].refused > max) max = days[i].refused;
  }
  bw = (W - 60) / n;
  fputs("<h2>Accepted and refused per day</h2>\n", o);
  fprintf(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" class=\"daily\">\n", W, H + 20);
  fprintf(o, "<line x1=\"50\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#444\"/>\n", H, W - 10, H);
  fprintf(o, "<text x=\"45\" y=\"12\" text-anchor=\"end\" font-size=\"10\">%u</text>\n", max);
  for (i = 0; i < n; ++i) {
    uint32_t v[2] = {days[first + i].accepted, days[first + i].refused};
    strftime(lab, sizeof lab, "%Y-%m-%d", gmtime(&(time_t){(time_t)((first_day + first + i) * 86400)}));
    for (k = 0; k < 2; ++k) {
      double hh = v[k] * (H - 10) / max;
      fprintf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" data-day=\"%s\" "
              "data-series=\"%s\" data-value=\"%u\"><title>%s %s: %u</title></rect>\n",
              50 + i * bw + k * bw * 0.45, H - hh, bw * 0.45, hh, k ? "#c0392b" : "#27ae60", lab,
              k ? "refused" : "accepted", v[k], lab, k ? "refused" : "accepted", v[k]);
    }
  }
  fputs("</svg>\n", o);
}

static void svg_top(FILE *o, const char *title, const char *cls, struct topk *t)
{
  int idx[TOPN], k = tk_top(t, idx, TOPN), i;
  uint64_t max = k ? t->e[idx[0]].count : 1;
  fprintf(o, "<h2>%s</h2>\n", title);
  if (!k) { fputs("<p>none</p>\n", o); return; }
  fprintf(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"800\" height=\"%d\" class=\"%s\">\n", k * 20 + 4, cls);
  for (i = 0; i < k; ++i) {
    struct tent *e = &t->e[idx[i]];
    double w = 440.0 * (double)e->count / (double)max;
    fprintf(o, "<text x=\"290\" y=\"%d\" text-anchor=\"end\" font-size=\"11\">", i * 20 + 14);
    xml(o, e->key);
    fprintf(o, "</text><rect x=\"300\" y=\"%d\" width=\"%.1f\" height=\"15\" fill=\"#2980b9\" data-label=\"", i * 20 + 2, w);
    xml(o, e->key);
    fprintf(o, "\" data-value=\"%llu\"/><text x=\"%.1f\" y=\"%d\" font-size=\"11\">%llu</text>\n",
            (unsigned long long)e->count, 305 + w, i * 20 + 14, (unsigned long long)e->count);
  }
  fputs("</svg>\n", o);
}

static void html(const char *fn)
{
  FILE *o = fopen(fn, "w");
  char a[32], b[32];
  if (!o) { fprintf(stderr, "mxguard-stats: %s: %s\n", fn, strerror(errno)); exit(111); }
  fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE html>\n"
        "<html xmlns=\"http://www.w3.org/1999/xhtml\"><head><meta charset=\"UTF-8\"/><title>mxguard-stats</title>\n"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}pre{background:#f4f4f4;padding:1em}</style></head><body>\n", o);
  fprintf(o, "<h1>mxguard-smtpd: %s .. %s UTC</h1>\n", when(tmin, a, sizeof a), when(tmax, b, sizeof b));
  fprintf(o, "<table class=\"summary\">\n"
          "<tr><td>sessions</td><td id=\"sessions\">%llu</td></tr>\n"
          "<tr><td>messages accepted</td><td id=\"messages\">%llu</td></tr>\n"
          "<tr><td>recipients accepted</td><td id=\"rcpt_ok\">%llu</td></tr>\n"
          "<tr><td>recipients refused</td><td id=\"rcpt_bad\">%llu</td></tr>\n"
          "<tr><td>refusals</td><td id=\"refusals\">%llu</td></tr>\n"
          "<tr><td>observed</td><td id=\"observes\">%llu</td></tr>\n</table>\n",
          (unsigned long long)sessions, (unsigned long long)messages, (unsigned long long)rcpt_ok,
          (unsigned long long)rcpt_bad, (unsigned long long)refusals, (unsigned long long)observes);
  fputs("<h2>Accepted and refused per hour</h2>\n", o);
  svg_hours(o, 0);
  fputs("<h2>Refusals by reason per hour</h2>\n", o);
  svg_hours(o, 1);
  svg_days(o);
  svg_top(o, "Top clients", "top-clients", clients);
  svg_top(o, "Top networks", "top-networks", nets);
  svg_top(o, "Top senders", "top-senders", senders);
  svg_top(o, "Top refused recipients", "top-rcpts", rcpts);
  fputs("<h2>Report</h2>\n<pre>", o);
  {
    /* the text report again, escaped */
    char *buf = 0;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (m) { text(m); fclose(m); xml(o, buf); free(buf); }
  }
  fputs("</pre>\n</body></html>\n", o);
  if (fclose(o)) { fprintf(stderr, "mxguard-stats: %s: %s\n", fn, strerror(errno)); exit(111); }
}

/* logdir - a multilog or svlogd directory: the rotated files (@...), oldest first, then current */
static int rotated(const struct dirent *e) { return e->d_name[0] == '@'; }
static void logdir(const char *dir)
{
  struct dirent **names;
  char path[4096];
  int n = scandir(dir, &names, rotated, alphasort), k, fd;
  if (n < 0) { fprintf(stderr, "mxguard-stats: %s: %s\n", dir, strerror(errno)); exit(111); }
  for (k = 0; k <= n; ++k) {
    snprintf(path, sizeof path, "%s/%s", dir, k < n ? names[k]->d_name : "current");
    if (k < n) free(names[k]);
    if ((fd = open(path, O_RDONLY)) == -1) {
      if (errno == ENOENT) continue;
      fprintf(stderr, "mxguard-stats: %s: %s\n", path, strerror(errno));
      exit(111);
    }
    input(fd, path);
    close(fd);
  }
  free(names);
}

static long long parse_when(const char *s)
{
  int y, mo, d, h = 0, mi = 0, se = 0;
  if (sscanf(s, "%d-%d-%d%*[T ]%d:%d:%d", &y, &mo, &d, &h, &mi, &se) < 3) {
    fprintf(stderr, "mxguard-stats: not a date: %s (YYYY-MM-DD[THH:MM:SS], UTC)\n", s);
    exit(100);
  }
  return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
}

int main(int argc, char **argv)
{
  const char *htmlfile = 0;
  int i, files = 0;
  if (argc == 2 && version_arg(argv[1])) version_print("mxguard-stats");
  clients = malloc(sizeof *clients); nets = malloc(sizeof *nets);
  senders = malloc(sizeof *senders); rcpts = malloc(sizeof *rcpts);
  hours = calloc(HOURS_MAX, sizeof *hours); days = calloc(DAYS_MAX, sizeof *days);
  if (!clients || !nets || !senders || !rcpts || !hours || !days) { fputs("mxguard-stats: out of memory\n", stderr); return 111; }
  tk_init(clients); tk_init(nets); tk_init(senders); tk_init(rcpts);
  for (i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--html") && i + 1 < argc) htmlfile = argv[++i];
    else if (!strcmp(argv[i], "--since") && i + 1 < argc) since = parse_when(argv[++i]);
    else if (!strcmp(argv[i], "--until") && i + 1 < argc) until = parse_when(argv[++i]);
    else if (!strcmp(argv[i], "--")) { ++i; break; }
    else if (argv[i][0] == '-' && argv[i][1]) {
      fputs("usage: mxguard-stats [--since DATE] [--until DATE] [--html FILE] [FILE ...]\n", stderr);
      return 100;
    } else break;
  }
  for (; i < argc; ++i) {
    int fd;
    struct stat st;
    if (strcmp(argv[i], "-") && stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
      logdir(argv[i]);
      ++files;
      continue;
    }
    fd = strcmp(argv[i], "-") ? open(argv[i], O_RDONLY) : 0;
    if (fd == -1) { fprintf(stderr, "mxguard-stats: %s: %s\n", argv[i], strerror(errno)); return 111; }
    input(fd, argv[i]);
    if (fd) close(fd);
    ++files;
  }
  if (!files) input(0, "stdin");
  text(stdout);
  if (htmlfile) html(htmlfile);
  return fflush(stdout) ? 111 : 0;
}
