/* content.c - DATA-time checks, one verdict before the reply to the final dot.
 *
 * Settings (rules_get_rcpt for every accepted recipient at DATA; see mxguard-smtpd(8) CONTENT):
 * REJECTEXEC (+ control/signatures), ATTACHBLOCK (+ control/badattach), ATTACHTYPES,
 * CHARSETBLOCK, HEADERBLOCK (+ control/headerblock), CLAMD, CLAMDMAXSIZE, CLAMDTIMEOUT,
 * CLAMDFAILOPEN, SPAMD, SPAMREJECT, SPAMTAG, SPAMMAXSIZE, SPAMDTIMEOUT, SPAMDFAILOPEN,
 * SPAMDUSER; CONTENTCLASS at RCPT. With several recipients: a block or scanner set for any
 * recipient applies to the message (the first recipient's value that is set), the spam
 * reject threshold is the highest (no reject unless every recipient has one), the tag
 * threshold the lowest; CONTENTCLASS makes every transaction carry one policy.
 *
 * The bytes come from data.c's blast through content_put as the client sends them: the
 * MIME reader (mime.c) runs over them when a MIME block is on, clamd gets them as INSTREAM
 * chunks at once (the verdict after the dot costs only clamd's tail), spamd needs the
 * length first, so they are spooled to a memfd up to SPAMMAXSIZE. When spamd tagging is on
 * the bytes are held in that spool and reach qmail-queue only after the verdict, so the
 * X-Spam-* fields come right after our Received line; a message over the size cap is not
 * scanned and flows on to qmail-queue directly. Scanner waits go through io_waitfd (the
 * poll loop), each scanner with a total time budget. Trouble is 451 4.3.0 unless fail-open. */
#define _GNU_SOURCE  /* memfd_create */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <fmt.h>
#include <stralloc.h>
#include "content.h"
#include "control.h"
#include "io.h"
#include "log.h"
#include "mime.h"
#include "rules.h"

#define CHUNK 65536            /* clamd INSTREAM chunk */
#define SPOOLBUF 65536
#define SPAMD_REPLY_MAX 8192
#define HEADERBLOCK_MAX 64

static const char *const names[] = {
  "REJECTEXEC", "ATTACHBLOCK", "ATTACHTYPES", "CHARSETBLOCK", "HEADERBLOCK", "CLAMD",
  "CLAMDMAXSIZE", "CLAMDTIMEOUT", "CLAMDFAILOPEN", "SPAMD", "SPAMREJECT", "SPAMTAG",
  "SPAMMAXSIZE", "SPAMDTIMEOUT", "SPAMDFAILOPEN", "SPAMDUSER", 0
};
enum { N_REJECTEXEC, N_ATTACHBLOCK, N_ATTACHTYPES, N_CHARSETBLOCK, N_HEADERBLOCK, N_CLAMD,
  N_CLAMDMAXSIZE, N_CLAMDTIMEOUT, N_CLAMDFAILOPEN, N_SPAMD, N_SPAMREJECT, N_SPAMTAG,
  N_SPAMMAXSIZE, N_SPAMDTIMEOUT, N_SPAMDFAILOPEN, N_SPAMDUSER, N_MAX };

struct scanner {
  int fd;
  int state;        /* 0 off, 1 on, 2 failed */
  const char *why;  /* failure token for the log */
  long budget_ms;   /* total time we may still wait on it */
  long long t0;
  unsigned long ms; /* time spent on it (log) */
};

/* the settings that switch a check on; the others only tune one */
static const int switches[] = {N_REJECTEXEC, N_ATTACHBLOCK, N_ATTACHTYPES, N_CHARSETBLOCK,
  N_HEADERBLOCK, N_CLAMD, N_SPAMD, -1};

static struct {
  int active;
  const char *v[N_MAX];         /* the merged settings */
  int mime;                     /* the MIME reader runs */
  void (*put)(void *, const char *, size_t);
  void *ctx;
  /* facts */
  int exec;                     /* REJECTEXEC hit */
  char block[160];              /* "attachment x.exe" etc.: the first block that hit */
  const char *blockwhy;         /* log token */
  /* zip in the current part */
  int zip;
  struct mime_b64 b64;
  struct mime_zip z;
  /* clamd */
  struct scanner c;
  unsigned long csent, cmax;
  int cpartial;
  size_t cfill;
  char virus[120];
  /* spamd */
  struct scanner sp;
  int spool, hold, unscanned;   /* spool fd; holding bytes for the X-Spam fields; over the cap */
  int spoolerr;                 /* a spool write or read failed: held bytes may be lost */
  unsigned long spooled, smax;
  size_t sfill;
  long score, reject, tag;      /* tenths */
  int scored;
  char symbols[300];
  char user[200];               /* spamd User: */
} c;
/* out of c: not cleared per message */
static struct mime mm;                  /* the MIME reader */
static unsigned char cbuf[4 + CHUNK];   /* one clamd chunk with its length */
static char sbuf[SPOOLBUF];             /* spool writes and reads */

static long long now(void) { return io_now_ms(); }

static int truthy(const char *x) { return x && *x && strcmp(x, "0") && strcasecmp(x, "no"); }

/* tenths - "5.0", "-1.5", "12" in tenths; 0 on syntax error with *ok = 0 */
static long tenths(const char *x, int *ok)
{
  long v = 0, sign = 1, frac = 0;
  int digits = 0;
  *ok = 0;
  if (!x) return 0;
  while (*x == ' ') ++x;
  if (*x == '-') { sign = -1; ++x; } else if (*x == '+') ++x;
  while (*x >= '0' && *x <= '9') { if (v < 100000000) v = v * 10 + (*x - '0'); ++x; ++digits; }
  if (*x == '.') {
    ++x;
    if (*x >= '0' && *x <= '9') { frac = *x - '0'; ++x; ++digits; }
    while (*x >= '0' && *x <= '9') ++x;
  }
  if (!digits) return 0;
  *ok = 1;
  return sign * (v * 10 + frac);
}

static void fmt_tenths(char *out, long t)
{
  size_t n = 0;
  if (t < 0) { out[n++] = '-'; t = -t; }
  n += fmt_ulong(out + n, (unsigned long)(t / 10));
  out[n++] = '.';
  out[n++] = (char)('0' + t % 10);
  out[n] = 0;
}

/* listhas - is s (len bytes) one of the comma/colon/space separated items of list? */
static int listhas(const char *list, const char *s, size_t len)
{
  while (list && *list) {
    size_t n;
    while (*list == ',' || *list == ':' || *list == ' ' || *list == ';') ++list;
    n = strcspn(list, ",: ;");
    if (n && n == len && !strncasecmp(list, s, n)) return 1;
    if (n && list[n - 1] == '*' && len >= n - 1 && !strncasecmp(list, s, n - 1)) return 1;
    list += n;
  }
  return 0;
}

/* ---- the class at RCPT ---- */

static stralloc class0, classx;
static unsigned first_i;

static const char *get_first(const char *name) { return rules_get_rcpt(first_i, name); }

static int classof(stralloc *sa, const char *(*get)(const char *))
{
  int i;
  sa->len = 0;
  for (i = 0; names[i]; ++i) {
    const char *x = get(names[i]);
    if (!x) continue;
    if (!stralloc_cats(sa, names[i]) || !stralloc_cats(sa, "=") || !stralloc_cats(sa, x) ||
        !stralloc_cats(sa, "\n"))
      return -1;
  }
  return 0;
}

/* the class is compared with the first accepted recipient's, read afresh through
 * rules_get_rcpt(0): when either of the two has CONTENTCLASS on */
struct decision content_rcpt(struct session *s)
{
  struct decision d = DECISION_NONE;
  if (!s->nrcpt) return d;
  if (!truthy(rules_get("CONTENTCLASS")) && !truthy(rules_get_rcpt(0, "CONTENTCLASS"))) return d;
  first_i = 0;
  if (classof(&class0, get_first) == -1 || classof(&classx, rules_get) == -1) {
    d.code = 451; d.esc = "4.3.0"; d.text = "out of memory"; d.reason = "nomem";
    return d;
  }
  /* two recipients without content settings have empty classes (s may be null) */
  if (classx.len == class0.len && (!class0.len || !memcmp(classx.s, class0.s, class0.len))) return d;
  d.code = 452; d.esc = "4.5.3";
  d.text = "different content policy, send in a separate transaction";
  d.reason = "contentclass";
  return d;
}

/* ---- policy lists from control/ ---- */

static stralloc sigs, badattach;
static int sigsok = -2, badattachok = -2, hbok = -2;
static struct { char name[64]; regex_t re; } hb[HEADERBLOCK_MAX];
static int nhb;

static int load_headerblock(void)
{
  stralloc sa = {0};
  size_t i;
  int r = control_readfile(&sa, "control/headerblock");
  if (r != 1) { free(sa.s); return r == 0 ? 0 : -1; }
  for (i = 0; i < sa.len; i += strlen(sa.s + i) + 1) {
    char *l = sa.s + i, *colon = strchr(l, ':'), *re;
    if (!*l || *l == '#') continue;
    if (!colon || (size_t)(colon - l) >= sizeof hb[0].name || nhb == HEADERBLOCK_MAX) {
      free(sa.s); return -1;
    }
    re = colon + 1;
    while (*re == ' ' || *re == '\t') ++re;
    memcpy(hb[nhb].name, l, (size_t)(colon - l));
    hb[nhb].name[colon - l] = 0;
    if (regcomp(&hb[nhb].re, re, REG_EXTENDED | REG_ICASE | REG_NOSUB)) { free(sa.s); return -1; }
    ++nhb;
  }
  free(sa.s);
  return 1;
}

/* ---- mime callbacks ---- */

static void setblock(const char *why, const char *what, const char *arg, size_t len)
{
  size_t n = 0, i;
  if (c.blockwhy) return;
  c.blockwhy = why;
  for (; *what && n < sizeof c.block - 1; ++what) c.block[n++] = *what;
  for (i = 0; i < len && n < sizeof c.block - 2; ++i) {
    unsigned char ch = (unsigned char)arg[i];
    c.block[n++] = ch >= 32 && ch < 127 ? (char)ch : '?';
  }
  if (len && n < sizeof c.block - 1) c.block[n++] = ')';
  c.block[n] = 0;
}

/* badname - does a file name end in a blocked extension (or equal a blocked name)? */
static int badname(const char *name, size_t len)
{
  const char *list = c.v[N_ATTACHBLOCK];
  size_t i;
  while (len && (name[len - 1] == ' ' || name[len - 1] == '.')) --len;  /* "x.exe. " */
  if (!len || !list) return 0;
  if (!truthy(list)) return 0;
  if (!strcmp(list, "1") || !strcasecmp(list, "yes")) {
    for (i = 0; i < badattach.len; i += strlen(badattach.s + i) + 1) {
      const char *e = badattach.s + i;
      size_t el;
      if (*e == '.') ++e;
      el = strlen(e);
      if (!el || *e == '#') continue;
      if (len == el && !strncasecmp(name, e, el)) return 1;
      if (len > el && name[len - el - 1] == '.' && !strncasecmp(name + len - el, e, el)) return 1;
    }
    return 0;
  }
  for (;;) {
    size_t n;
    while (*list == ',' || *list == ':' || *list == ' ' || *list == ';') ++list;
    if (!*list) return 0;
    n = strcspn(list, ",: ;");
    {
      const char *e = list;
      size_t el = n;
      if (*e == '.') { ++e; --el; }
      if (el && len == el && !strncasecmp(name, e, el)) return 1;
      if (el && len > el && name[len - el - 1] == '.' && !strncasecmp(name + len - el, e, el))
        return 1;
    }
    list += n;
  }
}

static void zipname(void *ctx, const char *name, size_t len, int central)
{
  (void)ctx; (void)central;
  if (badname(name, len)) setblock("content:zipattach", "attachment not allowed (in zip: ", name, len);
}

static void cb_header(void *ctx, const struct mime_part *p, const char *f, size_t len)
{
  const char *colon;
  (void)ctx; (void)p;
  if (c.v[N_CHARSETBLOCK]) {
    size_t pos = 0, cl;
    const char *cs;
    while ((cs = mime_ewcharset(f, len, &pos, &cl))) {
      const char *star = memchr(cs, '*', cl);  /* RFC 2231 language: =?cs*lang?...?= */
      if (star) cl = (size_t)(star - cs);
      if (listhas(c.v[N_CHARSETBLOCK], cs, cl)) { setblock("content:charset", "charset not accepted (", cs, cl); break; }
    }
  }
  if (c.v[N_HEADERBLOCK] && nhb && (colon = memchr(f, ':', len))) {
    int i;
    size_t nl = (size_t)(colon - f);
    for (i = 0; i < nhb; ++i) {
      static char v[MIME_HDR_MAX + 1];
      const char *val = colon + 1;
      size_t vl = len - nl - 1;
      if (strlen(hb[i].name) != nl || strncasecmp(hb[i].name, f, nl)) continue;
      while (vl && (*val == ' ' || *val == '\t')) { ++val; --vl; }
      memcpy(v, val, vl);
      v[vl] = 0;
      if (!regexec(&hb[i].re, v, 0, 0, 0)) { setblock("content:header", "header not accepted (", f, nl); break; }
    }
  }
}

static int zippy(const char *n)
{
  size_t l = strlen(n);
  return l > 4 && !strcasecmp(n + l - 4, ".zip");
}

static void cb_part(void *ctx, const struct mime_part *p)
{
  (void)ctx;
  if (c.v[N_CHARSETBLOCK] && p->charset[0] && listhas(c.v[N_CHARSETBLOCK], p->charset, strlen(p->charset)))
    setblock("content:charset", "charset not accepted (", p->charset, strlen(p->charset));
  if (c.v[N_ATTACHTYPES] && p->type[0] && listhas(c.v[N_ATTACHTYPES], p->type, strlen(p->type)))
    setblock("content:type", "attachment type not allowed (", p->type, strlen(p->type));
  if (c.v[N_ATTACHBLOCK]) {
    if (badname(p->filename, strlen(p->filename)))
      setblock("content:attach", "attachment not allowed (", p->filename, strlen(p->filename));
    else if (badname(p->name, strlen(p->name)))
      setblock("content:attach", "attachment not allowed (", p->name, strlen(p->name));
    c.zip = p->enc == MIME_ENC_BASE64 &&
      (zippy(p->filename) || zippy(p->name) || !strcmp(p->type, "application/zip") ||
       !strcmp(p->type, "application/x-zip-compressed") || !strcmp(p->type, "application/x-zip"));
    if (c.zip) {
      c.b64.acc = 0; c.b64.bits = 0;
      mime_zip_init(&c.z, zipname, 0);
    }
  }
}

static void cb_first(void *ctx, const struct mime_part *p, const char *s, size_t len)
{
  size_t i;
  (void)ctx; (void)p;
  if (!truthy(c.v[N_REJECTEXEC]) || sigsok != 1 || c.exec) return;
  /* qmail-ldap's execcheck: each signature a prefix of the line ('*' any one byte) */
  for (i = 0; i < sigs.len; i += strlen(sigs.s + i) + 1) {
    const char *sig = sigs.s + i;
    size_t k;
    if (!*sig || *sig == '#') continue;
    for (k = 0; k < len && *sig; ++k, ++sig)
      if (*sig != '*' && *sig != s[k]) break;
    if (!*sig) { c.exec = 1; return; }
  }
}

static void cb_body(void *ctx, const struct mime_part *p, const char *s, size_t len)
{
  unsigned char out[768];
  (void)ctx; (void)p;
  if (!c.zip) return;
  while (len) {
    size_t take = len > 1000 ? 1000 : len, n = mime_b64(&c.b64, s, take, out);
    mime_zip_feed(&c.z, out, n);
    s += take; len -= take;
  }
}

/* ---- scanner sockets ---- */

static void sc_fail(struct scanner *sc, const char *why)
{
  if (sc->state == 2) return;
  sc->state = 2;
  sc->why = why;
  if (sc->fd >= 0) { close(sc->fd); sc->fd = -1; }
}

/* sc_wait - wait for fd within the scanner's budget; 0 when the budget is spent */
static int sc_wait(struct scanner *sc, short ev)
{
  long long t = now();
  int r;
  if (sc->budget_ms <= 0) return 0;
  r = io_waitfd(sc->fd, ev, sc->budget_ms);
  sc->budget_ms -= (long)(now() - t);
  return r;
}

static int sc_connect(struct scanner *sc, const char *where, long timeout_ms)
{
  union { struct sockaddr_un un; struct sockaddr_in in; } a;
  socklen_t alen;
  int fd;
  memset(&a, 0, sizeof a);
  sc->budget_ms = timeout_ms;
  sc->t0 = now();
  sc->state = 1;
  sc->why = 0;
  if (*where == '/') {
    if (strlen(where) >= sizeof a.un.sun_path) { sc_fail(sc, "badaddress"); return -1; }
    a.un.sun_family = AF_UNIX;
    strcpy(a.un.sun_path, where);
    alen = sizeof a.un;
  } else {
    const char *colon = strrchr(where, ':');
    char host[64];
    unsigned long port;
    if (!colon || (size_t)(colon - where) >= sizeof host) { sc_fail(sc, "badaddress"); return -1; }
    memcpy(host, where, (size_t)(colon - where));
    host[colon - where] = 0;
    port = strtoul(colon + 1, 0, 10);
    a.in.sin_family = AF_INET;
    a.in.sin_port = htons((unsigned short)port);
    if (!port || port > 65535 || inet_pton(AF_INET, host, &a.in.sin_addr) != 1) {
      sc_fail(sc, "badaddress");
      return -1;
    }
    alen = sizeof a.in;
  }
  fd = socket(a.un.sun_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd == -1) { sc_fail(sc, "socket"); return -1; }
  sc->fd = fd;
  if (connect(fd, (struct sockaddr *)&a, alen) == -1) {
    int err = 0;
    socklen_t el = sizeof err;
    if (errno != EINPROGRESS && errno != EAGAIN) { sc_fail(sc, "connect"); return -1; }
    if (!sc_wait(sc, POLLOUT)) { sc_fail(sc, "timeout"); return -1; }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == -1 || err) { sc_fail(sc, "connect"); return -1; }
  }
  return 0;
}

static int sc_send(struct scanner *sc, const void *buf, size_t len)
{
  const char *p = buf;
  while (len) {
    ssize_t w;
    if (sc->state != 1) return -1;
    w = send(sc->fd, p, len, MSG_NOSIGNAL);
    if (w > 0) { p += w; len -= (size_t)w; continue; }
    if (w == -1 && (errno == EAGAIN || errno == EINTR)) {
      if (!sc_wait(sc, POLLOUT)) { sc_fail(sc, "timeout"); return -1; }
      continue;
    }
    sc_fail(sc, "write");
    return -1;
  }
  return 0;
}

/* sc_recv - read until the byte end (or EOF when end < 0) into buf; returns the length */
static ssize_t sc_recv(struct scanner *sc, char *buf, size_t max, int end)
{
  size_t n = 0;
  while (n < max - 1) {
    ssize_t r;
    if (sc->state != 1) return -1;
    r = read(sc->fd, buf + n, max - 1 - n);
    if (r > 0) {
      n += (size_t)r;
      if (end >= 0 && memchr(buf + n - (size_t)r, end, (size_t)r)) break;
      continue;
    }
    if (r == 0) break;
    if (errno == EAGAIN || errno == EINTR) {
      if (!sc_wait(sc, POLLIN)) { sc_fail(sc, "timeout"); return -1; }
      continue;
    }
    sc_fail(sc, "read");
    return -1;
  }
  buf[n] = 0;
  return (ssize_t)n;
}

/* ---- clamd ---- */

static void clamd_chunk(void)
{
  uint32_t be;
  if (!c.cfill || c.c.state != 1) return;
  be = htonl((uint32_t)c.cfill);
  memcpy(cbuf, &be, 4);
  sc_send(&c.c, cbuf, 4 + c.cfill);
  c.cfill = 0;
}

static void clamd_put(const char *x, size_t len)
{
  while (len && c.c.state == 1) {
    size_t take = CHUNK - c.cfill;
    if (c.csent >= c.cmax) { c.cpartial = 1; return; }
    if (take > len) take = len;
    if (take > c.cmax - c.csent) take = c.cmax - c.csent;
    memcpy(cbuf + 4 + c.cfill, x, take);
    c.cfill += take;
    c.csent += take;
    x += take; len -= take;
    if (c.cfill == CHUNK) clamd_chunk();
  }
}

/* clamd_verdict - 1 virus (c.virus), 0 clean, -1 trouble */
static int clamd_verdict(void)
{
  char r[256];
  static const unsigned char zero[4];
  ssize_t n;
  char *x, *e;
  clamd_chunk();
  if (sc_send(&c.c, zero, 4) == -1) return -1;
  n = sc_recv(&c.c, r, sizeof r, 0);
  if (n <= 0) { sc_fail(&c.c, n == 0 ? "eof" : c.c.why ? c.c.why : "read"); return -1; }
  x = r;
  if (!strncmp(x, "stream: ", 8)) x += 8;
  e = x + strlen(x);
  while (e > x && (e[-1] == '\n' || e[-1] == '\r')) *--e = 0;
  if (!strcmp(x, "OK")) return 0;
  if (e - x > 6 && !strcmp(e - 6, " FOUND")) {
    size_t i, vn = (size_t)(e - 6 - x);
    if (vn > sizeof c.virus - 1) vn = sizeof c.virus - 1;
    for (i = 0; i < vn; ++i) c.virus[i] = x[i] > 32 && x[i] < 127 ? x[i] : '?';
    c.virus[vn] = 0;
    return 1;
  }
  sc_fail(&c.c, "garbage");
  return -1;
}

/* ---- spamd and the spool ---- */

static void spool_flush(void)
{
  size_t off = 0;
  while (off < c.sfill) {
    ssize_t w = write(c.spool, sbuf + off, c.sfill - off);
    if (w == -1 && errno == EINTR) continue;
    if (w <= 0) { c.spoolerr = 1; break; }
    off += (size_t)w;
  }
  c.sfill = 0;
}

/* spool_copy - the spooled bytes through put */
static int spool_copy(void (*put)(void *, const char *, size_t), void *ctx)
{
  off_t off = 0;
  spool_flush();
  for (;;) {
    ssize_t r = pread(c.spool, sbuf, sizeof sbuf, off);
    if (r == -1 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) return (unsigned long)off == c.spooled ? 0 : -1;
    put(ctx, sbuf, (size_t)r);
    off += r;
  }
}

static void spool_put(const char *x, size_t len)
{
  if (c.spooled + len > c.smax) {
    /* over the cap: not scanned; what was held goes on to qmail-queue now */
    c.unscanned = 1;
    if (c.hold) {
      if (spool_copy(c.put, c.ctx) == -1) c.spoolerr = 1;
      c.hold = 0;
    }
    return;
  }
  c.spooled += len;
  while (len) {
    size_t take = sizeof sbuf - c.sfill;
    if (take > len) take = len;
    memcpy(sbuf + c.sfill, x, take);
    c.sfill += take;
    x += take; len -= take;
    if (c.sfill == sizeof sbuf) spool_flush();
  }
}

/* safecat - s with the bytes qmail's Received line would not write replaced by '?' */
static int safecat(stralloc *sa, const char *s)
{
  for (; s && *s; ++s) {
    char ch = *s;
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          strchr(".@%+/=:-[]", ch)))
      ch = '?';
    if (!stralloc_append(sa, &ch)) return 0;
  }
  return 1;
}

/* received - the client's hop as qmail's Received line gives it (without the date), for the
 * copy spamd sees: its relay rules (RCVD_IN_*, trusted networks) need the client's IP */
static int received(stralloc *sa, const struct session *s)
{
  sa->len = 0;
  return stralloc_cats(sa, "Received: from ") && safecat(sa, s->remotehost) &&
    (!s->fakehelo || (stralloc_cats(sa, " (HELO ") && safecat(sa, s->helo.s) && stralloc_cats(sa, ")"))) &&
    stralloc_cats(sa, " (") &&
    (!s->remoteinfo || (safecat(sa, s->remoteinfo) && stralloc_cats(sa, "@"))) &&
    safecat(sa, s->remoteip) && stralloc_cats(sa, ")\n  by ") && safecat(sa, s->local) &&
    stralloc_cats(sa, " with SMTP\n");
}

/* spamd_verdict - 0 scored (c.score), -1 trouble */
static int spamd_verdict(const struct session *s)
{
  static char r[SPAMD_REPLY_MAX];
  static stralloc rcv;
  char num[FMT_ULONG];
  stralloc h = {0};
  off_t off = 0;
  ssize_t n;
  char *x, *body;
  int ok;
  spool_flush();
  if (c.sp.state != 1) return -1;
  if (!received(&rcv, s)) { sc_fail(&c.sp, "nomem"); return -1; }
  if (!stralloc_copys(&h, "SYMBOLS SPAMC/1.5\r\nContent-length: ") ||
      !stralloc_catb(&h, num, fmt_ulong(num, c.spooled + rcv.len)) || !stralloc_cats(&h, "\r\n") ||
      (c.user[0] && (!stralloc_cats(&h, "User: ") || !stralloc_cats(&h, c.user) ||
                     !stralloc_cats(&h, "\r\n"))) ||
      !stralloc_cats(&h, "\r\n") || !stralloc_cat(&h, &rcv)) {
    free(h.s); sc_fail(&c.sp, "nomem"); return -1;
  }
  n = sc_send(&c.sp, h.s, h.len);
  free(h.s);
  if (n == -1) return -1;
  for (;;) {
    ssize_t got = pread(c.spool, sbuf, sizeof sbuf, off);
    if (got == -1 && errno == EINTR) continue;
    if (got < 0) { c.spoolerr = 1; sc_fail(&c.sp, "spool"); return -1; }
    if (!got) break;
    if (sc_send(&c.sp, sbuf, (size_t)got) == -1) return -1;
    off += got;
  }
  shutdown(c.sp.fd, SHUT_WR);
  n = sc_recv(&c.sp, r, sizeof r, -1);
  if (n <= 0) { sc_fail(&c.sp, n == 0 ? "eof" : c.sp.why ? c.sp.why : "read"); return -1; }
  /* SPAMD/1.1 0 EX_OK\r\n ... Spam: True ; 12.3 / 5.0\r\n\r\nSYMBOLS */
  if (strncmp(r, "SPAMD/", 6) || !(x = strchr(r, ' ')) || strncmp(x, " 0 ", 3)) {
    sc_fail(&c.sp, "garbage");
    return -1;
  }
  x = strstr(r, "\nSpam: ");
  if (!x || !(x = strchr(x, ';'))) { sc_fail(&c.sp, "garbage"); return -1; }
  c.score = tenths(x + 1, &ok);
  if (!ok) { sc_fail(&c.sp, "garbage"); return -1; }
  c.scored = 1;
  if ((body = strstr(r, "\r\n\r\n"))) {
    size_t i, k = 0;
    for (i = 4; body[i] && k < sizeof c.symbols - 1; ++i)
      if ((body[i] >= 'A' && body[i] <= 'Z') || (body[i] >= 'a' && body[i] <= 'z') ||
          (body[i] >= '0' && body[i] <= '9') || body[i] == '_' || body[i] == ',')
        c.symbols[k++] = body[i];
    c.symbols[k] = 0;
  }
  return 0;
}

/* ---- the message ---- */

static void reset(void)
{
  if (c.c.fd >= 0) close(c.c.fd);
  if (c.sp.fd >= 0) close(c.sp.fd);
  if (c.spool >= 0) close(c.spool);
  memset(&c, 0, sizeof c);
  c.c.fd = c.sp.fd = c.spool = -1;
}

void content_end(void)
{
  if (!c.active) return;
  reset();
}

static int once;

static struct decision trouble(const char *why)
{
  struct decision d = DECISION_NONE;
  d.code = 451; d.esc = "4.3.0"; d.text = "temporary content check failure"; d.reason = why;
  return d;
}

static unsigned long sizeval(const char *x, unsigned long dflt)
{
  char *e;
  unsigned long v;
  if (!x || !*x) return dflt;
  v = strtoul(x, &e, 10);
  if (*e == 'k' || *e == 'K') v *= 1024;
  else if (*e == 'm' || *e == 'M') v *= 1024 * 1024;
  return v ? v : dflt;
}

struct decision content_begin(struct session *s, int *on, void (*put)(void *, const char *, size_t), void *ctx)
{
  struct decision d = DECISION_NONE;
  unsigned i;
  int k, ok, anyreject = 1;
  if (!once) { once = 1; c.c.fd = c.sp.fd = c.spool = -1; }
  *on = 0;
  s->virus = s->content_block = 0;
  s->spam_scored = 0;
  s->mime_flags = 0;
  /* the hot path: no switch set for any recipient, nothing else is read */
  for (i = 0; i < s->nrcpt; ++i)
    for (k = 0; switches[k] >= 0; ++k)
      if (rules_get_rcpt(i, names[switches[k]])) goto some;
  return d;
some:
  reset();
  c.reject = -1; c.tag = -1;
  for (i = 0; i < s->nrcpt; ++i) {
    int rej = 0;
    for (k = 0; k < N_MAX; ++k) {
      const char *x = rules_get_rcpt(i, names[k]);
      if (x && !*x && k == N_REJECTEXEC) x = "1";  /* qmail-ldap: set, even empty, is on */
      if (!x || !*x) continue;
      if (k == N_SPAMREJECT) {
        long t = tenths(x, &ok);
        if (!ok) return trouble("content:setting");
        rej = 1;
        if (t > c.reject) c.reject = t;
      } else if (k == N_SPAMTAG) {
        long t = tenths(x, &ok);
        if (!ok) return trouble("content:setting");
        if (c.tag < 0 || t < c.tag) c.tag = t;
      } else if (!c.v[k]) c.v[k] = x;
    }
    if (!rej) anyreject = 0;
  }
  if (!anyreject) c.reject = -1;
  c.mime = truthy(c.v[N_REJECTEXEC]) || truthy(c.v[N_ATTACHBLOCK]) || c.v[N_ATTACHTYPES] ||
           c.v[N_CHARSETBLOCK] || truthy(c.v[N_HEADERBLOCK]);
  if (!c.v[N_HEADERBLOCK] || !truthy(c.v[N_HEADERBLOCK])) c.v[N_HEADERBLOCK] = 0;
  if (!truthy(c.v[N_ATTACHBLOCK])) c.v[N_ATTACHBLOCK] = 0;
  if (!c.mime && !c.v[N_CLAMD] && !c.v[N_SPAMD]) return d;
  c.active = 1;
  c.put = put;
  c.ctx = ctx;
  if (truthy(c.v[N_REJECTEXEC]) && sigsok == -2) {
    sigsok = control_readfile(&sigs, "control/signatures");
    if (sigsok == -1) { sigsok = -2; return trouble("control:signatures"); }
    if (sigsok == 0 && log_on(LOG_ERROR)) {  /* qmail-ldap: no signatures, no check; say so */
      log_start("error"); log_str("reason", "rejectexec:nosignatures");
      log_str("file", "control/signatures"); log_end();
    }
  }
  if (c.v[N_ATTACHBLOCK] && (!strcmp(c.v[N_ATTACHBLOCK], "1") || !strcasecmp(c.v[N_ATTACHBLOCK], "yes")) &&
      badattachok == -2) {
    badattachok = control_readfile(&badattach, "control/badattach");
    if (badattachok == -1) { badattachok = -2; return trouble("control:badattach"); }
    if (badattachok == 0) { badattachok = -2; return trouble("control:badattach"); }  /* asked for, absent */
  }
  if (c.v[N_HEADERBLOCK] && hbok == -2) {
    hbok = load_headerblock();
    if (hbok != 1) { hbok = -2; return trouble("control:headerblock"); }
  }
  if (c.mime) {
    struct mime_cb cb = {cb_header, cb_part, cb_first, cb_body, 0};
    mime_init(&mm, &cb);
  }
  if (c.v[N_CLAMD]) {
    c.cmax = sizeval(c.v[N_CLAMDMAXSIZE], 25UL * 1024 * 1024);
    if (sc_connect(&c.c, c.v[N_CLAMD], (long)sizeval(c.v[N_CLAMDTIMEOUT], 60) * 1000) == 0)
      sc_send(&c.c, "zINSTREAM", 10);
    if (c.c.state == 2 && !truthy(c.v[N_CLAMDFAILOPEN])) {
      const char *why = c.c.why;
      reset();
      d = trouble(!strcmp(why, "timeout") ? "clamd:timeout" : "clamd:down");
      return d;
    }
  }
  if (c.v[N_SPAMD]) {
    c.smax = sizeval(c.v[N_SPAMMAXSIZE], 512000);
    c.spool = memfd_create("mxguard-spool", MFD_CLOEXEC);
    if (c.spool == -1) { reset(); return trouble("spool"); }
    c.hold = c.tag >= 0;
    c.sp.state = 1;
    if (c.v[N_SPAMDUSER]) {
      /* "rcpt": the recipient's address when there is exactly one, else no User: */
      const char *u = strcmp(c.v[N_SPAMDUSER], "rcpt") ? c.v[N_SPAMDUSER] :
                      s->nrcpt == 1 ? s->rcptto.s + 1 : "";
      size_t n = 0;
      for (; *u && n < sizeof c.user - 1; ++u)
        if ((unsigned char)*u > 32 && (unsigned char)*u < 127) c.user[n++] = *u;
      c.user[n] = 0;
    }
    c.sp.fd = -1;
  }
  *on = 1;
  return d;
}

void content_put(void *ctx, const char *x, size_t len)
{
  (void)ctx;
  if (c.mime) mime_feed(&mm, x, len);
  if (c.c.state == 1) clamd_put(x, len);
  if (c.spool >= 0 && !c.unscanned) spool_put(x, len);
  if (!c.hold) c.put(c.ctx, x, len);
}

static void log_content(struct session *s, const struct decision *d, int clam, int spam)
{
  char t[16];
  if (!log_on(LOG_INFO)) return;
  log_start("content");
  log_str("ip", s->remoteip);
  log_ulong("size", s->msgbytes);
  if (c.mime) {
    log_ulong("parts", mm.nparts);
    if (mm.flags) log_ulong("mimeflags", mm.flags);
  }
  if (c.blockwhy) { log_str("block", c.blockwhy); log_client("what", c.block, strlen(c.block)); }
  if (c.exec) log_str("rejectexec", "hit");
  if (c.v[N_CLAMD]) {
    log_str("clamd", clam == 1 ? "found" : clam == 0 ? "ok" : clam == -2 ? "skipped" :
            truthy(c.v[N_CLAMDFAILOPEN]) ? "failopen" : "error");
    if (clam == 1) log_str("virus", c.virus);
    if (clam == -1 && c.c.why) log_str("clamd_error", c.c.why);
    if (c.cpartial) log_ulong("clamd_partial", c.csent);
    log_ulong("clamd_ms", c.c.ms);
  }
  if (c.v[N_SPAMD]) {
    log_str("spamd", spam == 0 ? "ok" : spam == -2 ? "skipped" : spam == -3 ? "toobig" :
            truthy(c.v[N_SPAMDFAILOPEN]) ? "failopen" : "error");
    if (spam == -1 && c.sp.why) log_str("spamd_error", c.sp.why);
    if (c.scored) { fmt_tenths(t, c.score); log_str("score", t); }
    log_ulong("spamd_ms", c.sp.ms);
  }
  log_str("verdict", d->code >= 500 ? "reject" : d->code >= 400 ? "defer" : "accept");
  log_end();
}

struct decision content_check(struct session *s)
{
  struct decision d = DECISION_NONE;
  static char text[300];
  static char virus[sizeof c.virus];
  int clam = -2, spam = -2;
  long long t;
  s->virus = s->content_block = 0;
  s->spam_scored = 0;
  s->spam_score = 0;
  s->mime_flags = 0;
  if (!c.active) return d;
  if (c.mime) mime_end(&mm);
  if (c.exec) {
    d.code = 552; d.esc = "5.3.4"; d.qmail = 1;
    d.text = "we don't accept email with this MIME content"; d.reason = "rejectexec";
  } else if (c.blockwhy) {
    memcpy(text, c.block, sizeof c.block);  /* c is cleared by content_end before the reply */
    d.code = 554; d.esc = "5.7.1"; d.text = text; d.reason = c.blockwhy;
  }
  if (c.v[N_CLAMD] && !d.code) {
    t = now();
    clam = c.c.state == 1 ? clamd_verdict() : -1;
    c.c.ms = (unsigned long)(now() - c.c.t0);
    (void)t;
    if (clam == 1) {
      size_t n = 0;
      const char *pre = "virus found: ";
      memcpy(text, pre, strlen(pre)); n = strlen(pre);
      memcpy(text + n, c.virus, strlen(c.virus) + 1);
      d.code = 554; d.esc = "5.7.0"; d.text = text; d.reason = "clamd:virus";
    } else if (clam == -1 && !truthy(c.v[N_CLAMDFAILOPEN])) {
      d = trouble(c.c.why && !strcmp(c.c.why, "timeout") ? "clamd:timeout" : "clamd:error");
    }
  }
  if (c.v[N_SPAMD] && !d.code && c.spoolerr) {
    spam = -1;
    c.sp.why = "spool";
    d = trouble("spool");  /* bytes held for qmail-queue may be lost: never fail-open */
  } else if (c.v[N_SPAMD] && !d.code) {
    if (c.unscanned) spam = -3;
    else {
      t = now();
      if (sc_connect(&c.sp, c.v[N_SPAMD], (long)sizeval(c.v[N_SPAMDTIMEOUT], 60) * 1000) == 0)
        spam = spamd_verdict(s);
      else spam = -1;
      c.sp.ms = (unsigned long)(now() - t);
    }
    if (spam == 0 && c.reject >= 0 && c.score >= c.reject) {
      char sc[16];
      fmt_tenths(sc, c.score);
      memcpy(text, "message looks like spam (score ", 31);
      memcpy(text + 31, sc, strlen(sc));
      memcpy(text + 31 + strlen(sc), ")", 2);
      d.code = 554; d.esc = "5.7.1"; d.text = text; d.reason = "spamd:spam";
    } else if (spam == -1 && !truthy(c.v[N_SPAMDFAILOPEN])) {
      d = trouble(c.sp.why && !strcmp(c.sp.why, "timeout") ? "spamd:timeout" : "spamd:error");
    }
  }
  /* the facts outlive content_end: static copies */
  if (clam == 1) { memcpy(virus, c.virus, sizeof virus); s->virus = virus; }
  s->content_block = c.exec ? "rejectexec" : c.blockwhy;
  s->spam_scored = c.scored;
  s->spam_score = c.score;
  s->mime_flags = c.mime ? mm.flags : 0;
  log_content(s, &d, clam, spam);
  return d;
}

int content_release(void (*put)(void *, const char *, size_t), void *ctx)
{
  int r = 0;
  if (!c.active) return 0;
  if (c.scored && c.tag >= 0 && c.score >= c.tag) {
    char sc[16], tg[16];
    stralloc h = {0};
    fmt_tenths(sc, c.score);
    fmt_tenths(tg, c.tag);
    if (stralloc_copys(&h, "X-Spam-Flag: YES\nX-Spam-Score: ") && stralloc_cats(&h, sc) &&
        stralloc_cats(&h, "\nX-Spam-Status: Yes, score=") && stralloc_cats(&h, sc) &&
        stralloc_cats(&h, " tag=") && stralloc_cats(&h, tg) &&
        (!c.symbols[0] || (stralloc_cats(&h, "\n\ttests=") && stralloc_cats(&h, c.symbols))) &&
        stralloc_cats(&h, "\n"))
      put(ctx, h.s, h.len);
    else r = -1;
    free(h.s);
  }
  if (c.hold && r == 0) r = spool_copy(put, ctx);
  c.hold = 0;
  if (c.spoolerr) r = -1;
  reset();
  return r;
}
