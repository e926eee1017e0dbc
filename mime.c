/* mime.c - the streaming MIME reader (see mime.h). Line oriented: body lines that cannot be
 * boundaries (not starting with '-') and are not a part's first line go to the body callback
 * straight from the input (memchr to the LF), so most bytes cost a memchr and one call.
 * Header lines are unfolded into hbuf; candidate boundary lines and first lines into lbuf.
 * Memory is the struct: no allocation at all. */
#include <string.h>
#include "mime.h"

enum { ST_HDR = 0, ST_BODY = 1, ST_SKIP = 2 };

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

static int ieq(const char *a, size_t alen, const char *b)
{
  size_t i;
  for (i = 0; i < alen; ++i)
    if (!b[i] || lower((unsigned char)a[i]) != b[i]) return 0;
  return b[i] == 0;
}

static int istarts(const char *a, size_t alen, const char *b)
{
  size_t i;
  for (i = 0; b[i]; ++i)
    if (i >= alen || lower((unsigned char)a[i]) != b[i]) return 0;
  return 1;
}

static int hexval(int c)
{
  if (c >= '0' && c <= '9') return c - '0';
  c = lower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* out is a bounded string keeping its tail: appending past max-1 drops from the front */
static void tailcat(char *out, size_t max, size_t *n, const char *s, size_t len)
{
  if (max < 2) return;
  if (len >= max - 1) { s += len - (max - 1); len = max - 1; *n = 0; }
  if (*n + len > max - 1) {
    size_t drop = *n + len - (max - 1);
    memmove(out, out + drop, *n - drop);
    *n -= drop;
  }
  memcpy(out + *n, s, len);
  *n += len;
  out[*n] = 0;
}

static void tailc(char *out, size_t max, size_t *n, char c) { tailcat(out, max, n, &c, 1); }

void mime_init(struct mime *m, const struct mime_cb *cb)
{
  memset(m, 0, sizeof *m - sizeof m->lbuf - sizeof m->hbuf);
  if (cb) m->cb = *cb;
  m->atstart = 1;
  m->state = ST_HDR;
}

/* ---- base64, RFC 2047 and RFC 2231 ---- */

static int b64val(int c)
{
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

size_t mime_b64(struct mime_b64 *b, const char *in, size_t len, unsigned char *out)
{
  size_t i, n = 0;
  for (i = 0; i < len; ++i) {
    int v = b64val((unsigned char)in[i]);
    if (v < 0) continue;
    b->acc = (b->acc << 6 | (unsigned long)v) & 0xffffff;
    b->bits += 6;
    if (b->bits >= 8) {
      b->bits -= 8;
      out[n++] = (unsigned char)(b->acc >> b->bits);
    }
  }
  return n;
}

const char *mime_ewcharset(const char *s, size_t len, size_t *pos, size_t *cslen)
{
  size_t i;
  for (i = *pos; i + 1 < len; ++i) {
    size_t j;
    if (s[i] != '=' || s[i + 1] != '?') continue;
    for (j = i + 2; j < len && s[j] != '?' && s[j] != ' ' && s[j] != '\t'; ++j);
    if (j >= len || s[j] != '?' || j == i + 2) continue;
    *cslen = j - (i + 2);
    *pos = j + 1;
    return s + i + 2;
  }
  *pos = len;
  return 0;
}

/* one encoded word at s (starting "=?"): decoded into out; returns bytes of s used, 0 if
 * it is not a well-formed word */
static size_t word(const char *s, size_t len, char *out, size_t max, size_t *n)
{
  size_t i = 2, e;
  int enc;
  while (i < len && s[i] != '?' && s[i] != ' ') ++i;
  if (i + 3 >= len || s[i] != '?') return 0;
  enc = lower((unsigned char)s[i + 1]);
  if ((enc != 'b' && enc != 'q') || s[i + 2] != '?') return 0;
  i += 3;
  for (e = i; e + 1 < len && !(s[e] == '?' && s[e + 1] == '='); ++e)
    if (s[e] == ' ' || s[e] == '\t') return 0;
  if (e + 1 >= len) return 0;
  if (enc == 'b') {
    struct mime_b64 b = {0, 0};
    unsigned char tmp[48];
    size_t k = i;
    while (k < e) {
      size_t chunk = e - k > 60 ? 60 : e - k;
      size_t got = mime_b64(&b, s + k, chunk, tmp);
      tailcat(out, max, n, (char *)tmp, got);
      k += chunk;
    }
  } else {
    size_t k;
    for (k = i; k < e; ++k) {
      int h, l;
      if (s[k] == '_') tailc(out, max, n, ' ');
      else if (s[k] == '=' && k + 2 < e + 1 && (h = hexval((unsigned char)s[k + 1])) >= 0 &&
               (l = hexval((unsigned char)s[k + 2])) >= 0) {
        tailc(out, max, n, (char)(h * 16 + l));
        k += 2;
      } else tailc(out, max, n, s[k]);
    }
  }
  return e + 2;
}

size_t mime_words(const char *s, size_t len, char *out, size_t max)
{
  size_t i = 0, n = 0;
  int afterword = 0;
  if (max) out[0] = 0;
  while (i < len) {
    if (s[i] == '=' && i + 1 < len && s[i + 1] == '?') {
      size_t used = word(s + i, len - i, out, max, &n);
      if (used) { i += used; afterword = 1; continue; }
    }
    if (afterword && (s[i] == ' ' || s[i] == '\t')) {
      size_t j = i;
      while (j < len && (s[j] == ' ' || s[j] == '\t')) ++j;
      if (j + 1 < len && s[j] == '=' && s[j + 1] == '?') { i = j; continue; }  /* between words */
    }
    afterword = 0;
    tailc(out, max, &n, s[i]);
    ++i;
  }
  return n;
}

/* pct - RFC 2231 percent decoding of s[0..len) appended to out */
static void pct(const char *s, size_t len, char *out, size_t max, size_t *n)
{
  size_t i;
  for (i = 0; i < len; ++i) {
    int h, l;
    if (s[i] == '%' && i + 2 < len && (h = hexval((unsigned char)s[i + 1])) >= 0 &&
        (l = hexval((unsigned char)s[i + 2])) >= 0) {
      tailc(out, max, n, (char)(h * 16 + l));
      i += 2;
    } else tailc(out, max, n, s[i]);
  }
}

int mime_param(const char *v, size_t len, const char *attr, char *out, size_t max)
{
  size_t i = 0, alen = strlen(attr), n = 0, n2 = 0;
  int found = 0, found2231 = 0;
  char tmp[MIME_NAME_MAX + 1];
  char val[MIME_NAME_MAX + 1];
  if (max > sizeof tmp) max = sizeof tmp;
  out[0] = 0;
  tmp[0] = 0;
  /* skip the value itself (the type or disposition) */
  while (i < len && v[i] != ';') {
    if (v[i] == '"') { ++i; while (i < len && v[i] != '"') { if (v[i] == '\\') ++i; ++i; } }
    ++i;
  }
  while (i < len) {
    size_t a, aend, vn = 0;
    int quoted = 0;
    ++i;  /* the ';' */
    while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ';')) ++i;
    a = i;
    while (i < len && v[i] != '=' && v[i] != ';' && v[i] != ' ' && v[i] != '\t') ++i;
    aend = i;
    while (i < len && (v[i] == ' ' || v[i] == '\t')) ++i;
    if (i >= len || v[i] != '=') {
      while (i < len && v[i] != ';') ++i;
      continue;
    }
    ++i;
    while (i < len && (v[i] == ' ' || v[i] == '\t')) ++i;
    val[0] = 0;
    if (i < len && v[i] == '"') {
      quoted = 1;
      for (++i; i < len && v[i] != '"'; ++i) {
        if (v[i] == '\\' && i + 1 < len) ++i;
        tailc(val, sizeof val, &vn, v[i]);
      }
      if (i < len) ++i;
      while (i < len && v[i] != ';') ++i;
    } else {
      for (; i < len && v[i] != ';'; ++i)
        if (v[i] != ' ' && v[i] != '\t') tailc(val, sizeof val, &vn, v[i]);
    }
    if (aend - a < alen || !istarts(v + a, aend - a, attr)) continue;
    if (aend - a == alen) {                       /* attr=value */
      if (!found2231) { n = 0; out[0] = 0; found = 1;
        if (!quoted || !strstr(val, "=?")) tailcat(out, max, &n, val, vn);
        else n = mime_words(val, vn, out, max);
      }
    } else if (v[a + alen] == '*') {              /* attr*=, attr*0=, attr*0*=, attr*1=... */
      const char *p = v + a + alen + 1, *e = v + aend;
      int ext, sect = 0;
      unsigned long num = 0;
      const char *s = val;
      size_t sl = vn;
      if (p == e) ext = 1;                        /* attr*= */
      else {
        const char *d0 = p;
        while (p < e && *p >= '0' && *p <= '9') num = num * 10 + (unsigned long)(*p++ - '0');
        if (p == d0) continue;
        sect = 1;
        if (p == e) ext = 0;
        else if (p == e - 1 && *p == '*') ext = 1;
        else continue;
      }
      if (!found2231 || (sect && num == 0) || !sect) { n2 = 0; tmp[0] = 0; }
      found2231 = 1;
      if (ext && (!sect || num == 0)) {           /* charset'language'text */
        const char *q1 = memchr(s, '\'', sl), *q2;
        if (q1 && (q2 = memchr(q1 + 1, '\'', sl - (size_t)(q1 + 1 - s)))) {
          sl -= (size_t)(q2 + 1 - s);
          s = q2 + 1;
        }
      }
      if (ext) pct(s, sl, tmp, max, &n2);
      else tailcat(tmp, max, &n2, s, sl);
    }
  }
  if (found2231) { memcpy(out, tmp, n2 + 1); return 1; }
  return found;
}

/* ---- the reader ---- */

static void setfield(char *dst, size_t max, const char *s, size_t len)
{
  size_t i;
  if (len > max - 1) len = max - 1;
  for (i = 0; i < len; ++i) dst[i] = (char)lower((unsigned char)s[i]);
  dst[len] = 0;
}

/* field - a complete header field in hbuf */
static void field(struct mime *m)
{
  const char *f = m->hbuf, *v, *c;
  size_t len = m->hlen, vl;
  struct mime_part *p = &m->part;
  if (!len) return;
  if (m->cb.header) m->cb.header(m->cb.ctx, p, f, len);
  c = memchr(f, ':', len);
  if (!c) return;
  v = c + 1;
  vl = len - (size_t)(v - f);
  while (vl && (*v == ' ' || *v == '\t')) { ++v; --vl; }
  if (ieq(f, (size_t)(c - f), "content-type")) {
    size_t t = 0;
    while (t < vl && v[t] != ';' && v[t] != ' ' && v[t] != '\t') ++t;
    setfield(p->type, sizeof p->type, v, t);
    if (mime_param(v, vl, "charset", p->charset, sizeof p->charset))
      setfield(p->charset, sizeof p->charset, p->charset, strlen(p->charset));
    mime_param(v, vl, "name", p->name, sizeof p->name);
    if (!mime_param(v, vl, "boundary", p->bnd, sizeof p->bnd) || strlen(p->bnd) > MIME_BND_MAX - 1)
      p->bnd[0] = 0;
  } else if (ieq(f, (size_t)(c - f), "content-disposition")) {
    mime_param(v, vl, "filename", p->filename, sizeof p->filename);
  } else if (ieq(f, (size_t)(c - f), "content-transfer-encoding")) {
    p->enc = istarts(v, vl, "base64") ? MIME_ENC_BASE64 :
             istarts(v, vl, "quoted-printable") ? MIME_ENC_QP : MIME_ENC_OTHER;
  }
}

static void newpart(struct mime *m)
{
  unsigned depth = m->nb + m->rfc;
  memset(&m->part, 0, sizeof m->part);
  m->part.depth = depth;
  m->part.index = ++m->nparts;
  m->state = ST_HDR;
  m->hlen = 0;
  m->leaf = 0;
}

/* endheader - the blank line after a header block */
static void endheader(struct mime *m)
{
  struct mime_part *p = &m->part;
  field(m);
  m->hlen = 0;
  if (m->cb.part) m->cb.part(m->cb.ctx, p);
  m->first = 1;
  m->leaf = 0;
  if (!strncmp(p->type, "multipart/", 10)) {
    if (!p->bnd[0]) m->flags |= MIME_F_NOBND;
    else if (m->nb + m->rfc >= MIME_DEPTH) m->flags |= MIME_F_DEPTH;
    else {
      size_t bl = strlen(p->bnd);
      memcpy(m->bnd[m->nb], p->bnd, bl + 1);
      m->blen[m->nb] = (unsigned char)bl;
      m->rfc_at[m->nb] = m->rfc;
      ++m->nb;
      m->rfc = 0;
      m->state = ST_SKIP;
      return;
    }
  } else if (!strcmp(p->type, "message/rfc822")) {
    if (m->nb + m->rfc >= MIME_DEPTH) m->flags |= MIME_F_DEPTH;
    else {
      ++m->rfc;
      newpart(m);
      m->first = 0;
      return;
    }
  }
  m->state = ST_BODY;
  m->leaf = 1;
}

/* boundary - is line s[0..len) a boundary of an open multipart? acts on it and returns 1 */
static int boundary(struct mime *m, const char *s, size_t len)
{
  unsigned k;
  if (len < 3 || s[0] != '-' || s[1] != '-' || !m->nb) return 0;
  for (k = m->nb; k-- > 0;) {
    size_t bl = m->blen[k];
    if (len - 2 < bl || memcmp(s + 2, m->bnd[k], bl)) continue;
    if (len - 2 - bl >= 2 && s[2 + bl] == '-' && s[3 + bl] == '-') {
      m->nb = k;                 /* close: the epilogue of the enclosing level follows */
      m->rfc = m->rfc_at[k];
      m->state = ST_SKIP;
      m->leaf = 0;
      m->first = 0;
    } else {
      m->nb = k + 1;
      m->rfc = 0;
      newpart(m);
      m->first = 0;
    }
    return 1;
  }
  return 0;
}

/* boundary_known - would boundary() act on s? */
static int boundary_known(const struct mime *m, const char *s, size_t len)
{
  unsigned k;
  if (len < 3 || s[0] != '-' || s[1] != '-') return 0;
  for (k = 0; k < m->nb; ++k)
    if (len - 2 >= m->blen[k] && !memcmp(s + 2, m->bnd[k], m->blen[k])) return 1;
  return 0;
}

/* bodyline - a complete (or cut) body line buffered in lbuf */
static void bodyline(struct mime *m, const char *s, size_t len, int complete)
{
  if (complete && boundary(m, s, len)) return;
  if (m->first) {
    m->first = 0;
    if (m->cb.firstline) m->cb.firstline(m->cb.ctx, &m->part, s, len);
  }
  if (m->leaf && m->cb.body) m->cb.body(m->cb.ctx, &m->part, s, len);
}

/* hdrbytes - header bytes s[0..len) (no LF) of the current line into hbuf */
static void hdrbytes(struct mime *m, const char *s, size_t len)
{
  size_t room = sizeof m->hbuf - m->hlen;
  if (memchr(s, 0, len)) m->flags |= MIME_F_NUL;
  if (len > room) { m->flags |= MIME_F_HDRLONG; len = room; }
  memcpy(m->hbuf + m->hlen, s, len);
  m->hlen += len;
}

/* hdrline_end - the LF of a header line */
static void hdrline_end(struct mime *m)
{
  if (m->newfield && m->nb && m->hlen - m->linestart >= 3 &&
      m->hbuf[m->linestart] == '-' && m->hbuf[m->linestart + 1] == '-') {
    /* a boundary where a header was expected: a part without its blank line */
    char tmp[MIME_BND_MAX + 8];
    size_t l = m->hlen - m->linestart;
    if (l <= sizeof tmp) {
      memcpy(tmp, m->hbuf + m->linestart, l);
      m->hlen = m->linestart;
      if (boundary_known(m, tmp, l)) {
        /* the header block was cut short: report the part as it is, then the boundary */
        if (m->cb.part) m->cb.part(m->cb.ctx, &m->part);
        boundary(m, tmp, l);
        return;
      }
      memcpy(m->hbuf + m->hlen, tmp, l);
      m->hlen += l;
    }
  }
}

void mime_feed(struct mime *m, const char *s, size_t len)
{
  const char *end = s + len;
  while (s < end) {
    const char *nl;
    size_t n;
    if (m->state == ST_HDR) {
      if (m->atstart) {
        if (*s == '\n') {
          ++s;
          endheader(m);
          continue;
        }
        m->atstart = 0;
        if (*s == ' ' || *s == '\t') { m->cont = 1; m->newfield = 0; }
        else {
          /* boundary check on a header line needs the field flushed first */
          field(m);
          m->hlen = 0;
          m->cont = 0;
          m->newfield = 1;
        }
        m->linestart = m->hlen;
      }
      nl = memchr(s, '\n', (size_t)(end - s));
      n = nl ? (size_t)(nl - s) : (size_t)(end - s);
      hdrbytes(m, s, n);
      s += n;
      if (nl) {
        ++s;
        m->atstart = 1;
        hdrline_end(m);
      }
      continue;
    }
    /* body or preamble/epilogue */
    if (m->atstart) {
      m->atstart = 0;
      m->llen = 0;
      m->buffering = m->first || *s == '-';
    }
    nl = memchr(s, '\n', (size_t)(end - s));
    n = nl ? (size_t)(nl + 1 - s) : (size_t)(end - s);
    if (m->buffering) {
      size_t room = sizeof m->lbuf - m->llen;
      size_t take = n > room ? room : n;
      memcpy(m->lbuf + m->llen, s, take);
      m->llen += take;
      s += take;
      if (take == n && nl) {
        m->atstart = 1;
        m->buffering = 0;
        bodyline(m, m->lbuf, m->llen, 1);
      } else if (m->llen == sizeof m->lbuf) {
        /* too long to be a boundary: deliver what we have, the rest goes straight */
        m->buffering = 0;
        bodyline(m, m->lbuf, m->llen, 0);
      }
      continue;
    }
    if (m->leaf && m->cb.body) m->cb.body(m->cb.ctx, &m->part, s, n);
    s += n;
    if (nl) m->atstart = 1;
  }
}

void mime_end(struct mime *m)
{
  if (m->state == ST_HDR) {
    field(m);
    m->hlen = 0;
    if (m->cb.part) m->cb.part(m->cb.ctx, &m->part);
  } else if (m->buffering && m->llen) {
    m->buffering = 0;
    bodyline(m, m->lbuf, m->llen, 1);
  }
  if (m->nb) m->flags |= MIME_F_UNCLOSED;
}

/* ---- zip names ---- */

void mime_zip_init(struct mime_zip *z, void (*cb)(void *, const char *, size_t, int), void *ctx)
{
  memset(z, 0, sizeof *z);
  z->cb = cb;
  z->ctx = ctx;
}

#define ZIP_LOCAL 0x04034b50U
#define ZIP_CENTRAL 0x02014b50U

void mime_zip_feed(struct mime_zip *z, const unsigned char *s, size_t len)
{
  size_t i = 0;
  while (i < len) {
    if (z->state == 0) {
      z->sig = z->sig >> 8 | (unsigned)s[i++] << 24;
      if (z->sig == ZIP_LOCAL || z->sig == ZIP_CENTRAL) {
        z->central = z->sig == ZIP_CENTRAL;
        z->need = z->central ? 42 : 26;  /* the fixed header after the signature */
        z->got = 0;
        z->state = 1;
        z->sig = 0;
      }
    } else if (z->state == 1) {
      size_t take = z->need - z->got;
      if (take > len - i) take = len - i;
      memcpy(z->fix + z->got, s + i, take);
      z->got += (unsigned)take;
      i += take;
      if (z->got == z->need) {
        unsigned off = z->central ? 24 : 22;  /* file name length, from after the signature */
        z->namelen = (unsigned)z->fix[off] | (unsigned)z->fix[off + 1] << 8;
        z->got = 0;
        z->state = z->namelen ? 2 : 0;
      }
    } else {
      size_t take = z->namelen - z->got;
      if (take > len - i) take = len - i;
      if (!z->got) z->nlen = 0;
      tailcat(z->name, sizeof z->name, &z->nlen, (const char *)s + i, take);
      z->got += (unsigned)take;
      i += take;
      if (z->got == z->namelen) {
        ++z->entries;
        if (z->cb) z->cb(z->ctx, z->name, z->nlen, (int)z->central);
        z->state = 0;
      }
    }
  }
}
