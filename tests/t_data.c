/* t_data - data.c (the DATA byte stream) against compat §4.7: CRLF to LF, dot-unstuffing, the
 * only end marker CR LF . CR LF, bare LF fatal in every position (no SMTP smuggling), CRs kept,
 * hop counting on raw header lines, the databytes limit. Each table case is fed whole, byte by
 * byte and in two pieces at every split point. Then a differential test: a byte-by-byte copy of
 * qmail-smtpd's blast() (model_blast below) and data.c must agree on output, hops, size,
 * overflow, result and end position for many random inputs fed in random chunk sizes; that is
 * the guard for blast_feed's memchr fast path. T_DATA_SEED=n and T_DATA_ROUNDS=n change the
 * random run. */
#include "data.h"
#include "check.h"

#include "blast_model.h"

/* ---- data.c driven in chunks ---- */

struct sink {
  char *s;
  size_t len, cap;
};

static void sinkput(void *ctx, const char *s, size_t len)
{
  struct sink *k = ctx;
  if (k->len + len > k->cap) { k->len = k->cap + 1; return; }  /* cannot happen: cap = input */
  memcpy(k->s + k->len, s, len);
  k->len += len;
}

struct run {
  int result;
  size_t used;         /* total bytes consumed */
  unsigned long hops, bytes;
  int overflow;
  int tail_changed;    /* bytes after the end marker were modified */
  int short_more;      /* a BLAST_MORE chunk was not consumed whole */
  size_t outlen;
};

/* run_data - feed in[0..len) to data.c in chunks of the sizes in cuts (0-terminated list,
 * the last chunk takes the rest) */
static void run_data(const char *in, size_t len, unsigned long limit, const size_t *cuts,
                     struct sink *k, struct run *r)
{
  static char *buf;
  static size_t bufcap;
  struct blast b;
  size_t off = 0, ci = 0;
  memset(r, 0, sizeof *r);
  if (bufcap < len + 1) {
    free(buf);
    buf = malloc(bufcap = len + 1);
  }
  k->len = 0;
  blast_init(&b, limit, sinkput, k);
  r->result = BLAST_MORE;
  while (off < len) {
    size_t n = cuts && cuts[ci] ? cuts[ci++] : len - off, used = (size_t)-1;
    int res;
    if (n > len - off) n = len - off;
    memcpy(buf, in + off, n);  /* a copy per chunk: blast_feed may modify its input */
    res = blast_feed(&b, buf, n, &used);
    if (used > n) { r->short_more = 1; used = n; }
    if (res == BLAST_MORE && used != n) r->short_more = 1;
    if (res != BLAST_MORE && memcmp(buf + used, in + off + used, n - used)) r->tail_changed = 1;
    off += used;
    r->result = res;
    if (res != BLAST_MORE) break;
  }
  r->used = off;
  r->hops = b.hops;
  r->bytes = b.bytes;
  r->overflow = b.overflow;
  r->outlen = k->len;
}

/* ---- table cases ---- */

struct dcase {
  const char *name;
  const char *in;
  size_t len;
  unsigned long limit;
  int result;
  long used;         /* -1: all of the input */
  const char *out;   /* 0: do not compare (bare LF: nothing is queued anyway) */
  size_t outlen;
  long hops;         /* -1: do not compare */
  int overflow;
};

#define S(x) x, sizeof x - 1
#define E "\r\n.\r\n"
enum { M = BLAST_MORE, END = BLAST_END, LF = BLAST_BARELF };

static const struct dcase dcases[] = {
  /* conversion */
  {"crlf_to_lf", S("a\r\nb" E), 0, END, -1, S("a\nb\n"), 0, 0},
  {"empty_message", S(".\r\n"), 0, END, -1, S(""), 0, 0},
  {"one_empty_line", S(E), 0, END, -1, S("\n"), 0, 0},
  {"two_empty_lines", S("\r\n" E), 0, END, -1, S("\n\n"), 0, 0},
  {"dot_unstuff_dotdot", S("..x" E), 0, END, -1, S(".x\n"), 0, 0},
  {"dot_unstuff_single", S(".x" E), 0, END, -1, S("x\n"), 0, 0},
  {"dot_space", S(". " E), 0, END, -1, S(" \n"), 0, 0},
  {"dot_only_line_then_more", S("a\r\n..\r\nb" E), 0, END, -1, S("a\n.\nb\n"), 0, 0},
  {"dot_cr_x", S("a\r\n.\rX" E), 0, END, -1, S("a\n.\rX\n"), 0, 0},
  {"dot_cr_cr_lf", S("a\r\n.\r\r\n" E), 0, END, -1, S("a\n.\r\n\n"), 0, 0},
  {"dot_cr_cr_x", S("a\r\n.\r\rx" E), 0, END, -1, S("a\n.\r\rx\n"), 0, 0},
  {"dot_cr_dot", S("a\r\n.\r." E), 0, END, -1, S("a\n.\r.\n"), 0, 0},
  {"dot_mid_line", S("a.b\r\n" E), 0, END, -1, S("a.b\n\n"), 0, 0},
  {"first_byte_dot_unstuffed", S("..\r\n.\r\n"), 0, END, -1, S(".\n"), 0, 0},
  {"cr_cr_lf", S("double CR\r\r\n" E), 0, END, -1, S("double CR\r\n\n"), 0, 0},
  {"cr_cr_cr_lf", S("x\r\r\r\n" E), 0, END, -1, S("x\r\r\n\n"), 0, 0},
  {"lone_cr_kept", S("mid\rCR" E), 0, END, -1, S("mid\rCR\n"), 0, 0},
  {"lone_cr_line_start", S("\rx" E), 0, END, -1, S("\rx\n"), 0, 0},
  {"cr_at_end_of_line_start", S("\r\r\n.\r\n"), 0, END, -1, S("\r\n"), 0, 0},
  {"nul_and_8bit", S("a\0\xff\x80" E), 0, END, -1, S("a\0\xff\x80\n"), 0, 0},
  {"cr_dot_cr_is_not_end", S("x\r.\rmore" E), 0, END, -1, S("x\r.\rmore\n"), 0, 0},
  {"crlf_dot_cr_x_not_end", S("x\r\n.\rQUIT\r\n" E), 0, END, -1, S("x\n.\rQUIT\n\n"), 0, 0},
  /* the end marker and what follows it */
  {"bytes_after_end", S("a" E "QUIT\r\n"), 0, END, 6, S("a\n"), 0, 0},
  {"end_then_data", S(".\r\nMAIL FROM:<x>\r\n"), 0, END, 3, S(""), 0, 0},
  {"end_then_bare_lf", S("a" E "\n"), 0, END, 6, S("a\n"), 0, 0},
  {"no_end_yet", S("a\r\nb\r\n"), 0, M, -1, S("a\nb\n"), 0, 0},
  {"no_end_dot_pending", S("a\r\n."), 0, M, -1, S("a\n"), 0, 0},
  {"no_end_dot_cr_pending", S("a\r\n.\r"), 0, M, -1, S("a\n"), 0, 0},
  {"no_end_cr_pending", S("ab\r"), 0, M, -1, S("ab"), 0, 0},
  {"no_end_cr_cr_pending", S("ab\r\r"), 0, M, -1, S("ab\r"), 0, 0},
  {"empty_input", S(""), 0, M, -1, S(""), 0, 0},
  /* bare LF anywhere, and every smuggling variant: fatal, never an early end */
  {"barelf_first_byte", S("\n"), 0, LF, 1, 0, 0, -1, 0},
  {"barelf_first_byte_then_end", S("\n.\r\n"), 0, LF, 1, 0, 0, -1, 0},
  {"barelf_mid_line", S("abc\ndef" E), 0, LF, 4, 0, 0, -1, 0},
  {"barelf_line_start", S("a\r\n\nb" E), 0, LF, 4, 0, 0, -1, 0},
  {"barelf_lf_dot_lf", S("a\n.\nb" E), 0, LF, 2, 0, 0, -1, 0},
  {"barelf_crlf_dot_lf", S("a\r\n.\nb" E), 0, LF, 5, 0, 0, -1, 0},
  {"barelf_lf_dot_crlf", S("a\n.\r\nb" E), 0, LF, 2, 0, 0, -1, 0},
  {"barelf_cr_dot_lf", S("a\r.\nb" E), 0, LF, 4, 0, 0, -1, 0},
  {"cr_dot_crlf_not_end", S("a\r.\r\nMAIL" E), 0, END, -1, S("a\r.\nMAIL\n"), 0, 0},
  {"barelf_dot_lf_first", S(".\n"), 0, LF, 2, 0, 0, -1, 0},
  {"barelf_dot_cr_lf_lf", S(".\r\r\n\n"), 0, LF, 5, 0, 0, -1, 0},
  {"barelf_lf_lf", S("x\r\n\n\n"), 0, LF, 4, 0, 0, -1, 0},
  {"barelf_after_nul", S("a\0\nb"), 0, LF, 3, 0, 0, -1, 0},
  {"barelf_in_header", S("Received: x\nReceived: y\r\n" E), 0, LF, 12, 0, 0, -1, 0},
  {"barelf_long_line", S("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nyy" E), 0, LF, 47, 0, 0, -1,
   0},
  {"barelf_in_body", S("a\r\n\r\nbody\r\nmore\nx" E), 0, LF, 16, 0, 0, -1, 0},
  /* hop counting */
  {"hop_received", S("Received: x\r\n\r\nbody" E), 0, END, -1, S("Received: x\n\nbody\n"), 1, 0},
  {"hop_received_upper", S("RECEIVED: x" E), 0, END, -1, 0, 0, 1, 0},
  {"hop_received_mixed", S("ReCeIvEd: x" E), 0, END, -1, 0, 0, 1, 0},
  {"hop_received_no_colon", S("Received" E), 0, END, -1, 0, 0, 1, 0},
  {"hop_received_prefix", S("Receivedxyz" E), 0, END, -1, 0, 0, 1, 0},
  {"hop_received_spf", S("Received-SPF: pass" E), 0, END, -1, 0, 0, 1, 0},
  {"hop_x_received_not", S("X-Received: x" E), 0, END, -1, 0, 0, 0, 0},
  {"hop_receive_not", S("Receive: x" E), 0, END, -1, 0, 0, 0, 0},
  {"hop_recieved_not", S("Recieved: x" E), 0, END, -1, 0, 0, 0, 0},
  {"hop_space_received_not", S(" Received: x" E), 0, END, -1, 0, 0, 0, 0},
  {"hop_delivered", S("Delivered-To: x" E), 0, END, -1, 0, 0, 1, 0},
  {"hop_delivered_upper", S("DELIVERED-TO: x" E), 0, END, -1, 0, 0, 1, 0},
  {"hop_delivered_exact", S("delivered" E), 0, END, -1, 0, 0, 1, 0},
  {"hop_delivere_not", S("Delivere" E), 0, END, -1, 0, 0, 0, 0},
  {"hop_delivery_not", S("Delivery: x" E), 0, END, -1, 0, 0, 0, 0},
  {"hop_two_lines", S("Received: a\r\nDelivered-To: b\r\nSubject: c" E), 0, END, -1, 0, 0, 2, 0},
  {"hop_continuation_not", S("Subject: a\r\n Received: b" E), 0, END, -1, 0, 0, 0, 0},
  {"hop_dot_raw_not", S(".Received: a" E), 0, END, -1, S("Received: a\n"), 0, 0},
  {"hop_stop_at_empty_line", S("Subject: a\r\n\r\nReceived: b" E), 0, END, -1, 0, 0, 0, 0},
  {"hop_empty_first_line", S("\r\nReceived: b" E), 0, END, -1, 0, 0, 0, 0},
  {"hop_blank_line_is_not_empty", S("X: a\r\n \r\nReceived: b" E), 0, END, -1, 0, 0, 1, 0},
  {"hop_cr_cr_lf_is_not_empty", S("X: a\r\n\r\r\nReceived: b" E), 0, END, -1, 0, 0, 1, 0},
  {"hop_cr_inside_prefix_not", S("Rec\reived: b" E), 0, END, -1, 0, 0, 0, 0},
  {"hop_after_lone_cr_line", S("\rReceived: b" E), 0, END, -1, 0, 0, 0, 0},
  {"hop_no_end_counted", S("Received: a\r\n"), 0, M, -1, 0, 0, 1, 0},
  /* databytes */
  {"limit_exact", S("1234" E), 5, END, -1, S("1234\n"), 0, 0},
  {"limit_plus_one", S("12345" E), 5, END, -1, S("12345"), 0, 1},
  {"limit_far_over", S("1234567890\r\nabcdef" E "x"), 3, END, 23, S("123"), 0, 1},
  {"limit_counts_converted", S("..\r\n.\r\n"), 2, END, -1, S(".\n"), 0, 0},
  {"limit_counts_converted_over", S("..\r\n.\r\n"), 1, END, -1, S("."), 0, 1},
  {"limit_one_empty", S(".\r\n"), 1, END, -1, S(""), 0, 0},
  {"limit_dot_cr_pair", S("a\r\n.\rX" E), 3, END, -1, S("a\n."), 0, 1},
  {"limit_dot_cr_pair_exact", S("a\r\n.\rX" E), 5, END, -1, S("a\n.\rX"), 0, 1},
  {"limit_cr_kept", S("a\rb" E), 3, END, -1, S("a\rb"), 0, 1},
  {"limit_cr_kept_exact", S("a\rb" E), 4, END, -1, S("a\rb\n"), 0, 0},
  {"limit_overflow_still_reads_to_end", S("abcdef\r\n" E "rest"), 2, END, 13, S("ab"), 0, 1},
  {"limit_overflow_then_barelf", S("abcdef\r\nx\ny" E), 2, LF, 10, S("ab"), 0, 1},
  {0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
};

/* one_way - compare one run with the case; returns 0 and reports on mismatch */
static int one_way(const struct dcase *c, const char *how, const size_t *cuts)
{
  static char outbuf[70000];
  struct sink k = {outbuf, 0, sizeof outbuf};
  struct run r;
  char n[200];
  size_t wantused = c->used < 0 ? c->len : (size_t)c->used;
  snprintf(n, sizeof n, "blast %s", c->name);
  run_data(c->in, c->len, c->limit, cuts, &k, &r);
  if (r.result != c->result)
    return check(0, n, "%s: result %d, want %d", how, r.result, c->result);
  if (r.used != wantused) return check(0, n, "%s: used %zu, want %zu", how, r.used, wantused);
  if (r.short_more) return check(0, n, "%s: BLAST_MORE did not consume its chunk", how);
  if (r.tail_changed) return check(0, n, "%s: bytes after the end were modified", how);
  if (c->out && (r.outlen != c->outlen || memcmp(outbuf, c->out, c->outlen)))
    return check(0, n, "%s: out %s, want %s", how, check_esc(outbuf, r.outlen),
                 check_esc(c->out, c->outlen));
  if (c->hops >= 0 && r.hops != (unsigned long)c->hops)
    return check(0, n, "%s: hops %lu, want %ld", how, r.hops, c->hops);
  if (r.overflow != c->overflow)
    return check(0, n, "%s: overflow %d, want %d", how, r.overflow, c->overflow);
  if (c->limit && r.bytes > c->limit) return check(0, n, "%s: bytes %lu > limit", how, r.bytes);
  if (r.bytes != r.outlen) return check(0, n, "%s: bytes %lu, emitted %zu", how, r.bytes, r.outlen);
  return 1;
}

static void table_cases(void)
{
  const struct dcase *c;
  static size_t ones[100000];
  size_t i;
  for (i = 0; i < sizeof ones / sizeof ones[0]; ++i) ones[i] = 1;
  for (c = dcases; c->name; ++c) {
    size_t cut[2] = {0, 0};
    char how[64], n[200];
    int ok = one_way(c, "whole", 0) && one_way(c, "bytewise", ones);
    for (i = 1; ok && i < c->len; ++i) {
      cut[0] = i;
      snprintf(how, sizeof how, "split at %zu", i);
      ok = one_way(c, how, cut);
    }
    if (ok) {
      snprintf(n, sizeof n, "blast %s", c->name);
      check(1, n, "%s", "");
    }
  }
}

/* hops_limit - 99 and 100 Received lines, counted across a 1-byte-at-a-time feed too */
static void hop_count_cases(void)
{
  static char in[20000], outbuf[20000];
  struct sink k = {outbuf, 0, sizeof outbuf};
  struct run r;
  size_t n = 0;
  int i;
  for (i = 0; i < 150; ++i)
    n += (size_t)sprintf(in + n, i & 1 ? "Delivered-To: u%d\r\n" : "Received: from h%d\r\n", i);
  n += (size_t)sprintf(in + n, "\r\nReceived: in the body\r\n.\r\n");
  run_data(in, n, 0, 0, &k, &r);
  check(r.result == END && r.hops == 150, "blast hops_150_lines", "result %d hops %lu", r.result,
        r.hops);
}

/* one header line cut in every possible place across three feeds */
static void split_header_cases(void)
{
  static const char in[] = "Received: a\r\nDELIVERED-to: b\r\nX: c\r\n\r\nReceived: d\r\n.\r\n";
  static char outbuf[200];
  struct sink k = {outbuf, 0, sizeof outbuf};
  struct run r;
  size_t i, j, len = sizeof in - 1;
  int ok = 1;
  for (i = 1; i < len && ok; ++i)
    for (j = 1; i + j < len && ok; ++j) {
      size_t cuts[3] = {i, j, 0};
      run_data(in, len, 0, cuts, &k, &r);
      if (r.result != END || r.hops != 2 || r.used != len)
        ok = check(0, "blast hops_split_three_ways", "cuts %zu,%zu: result %d hops %lu used %zu", i, j,
                   r.result, r.hops, r.used);
    }
  if (ok) check(1, "blast hops_split_three_ways", "%s", "");
}

/* a long line, bigger than any buffer, fed in big chunks: the fast path end to end */
static void big_cases(void)
{
  static char in[1 << 20], outbuf[1 << 20];
  struct sink k = {outbuf, 0, sizeof outbuf};
  struct run r;
  size_t n = 0, i, cuts[] = {4096, 16384, 3, 1, 65536, 0};
  for (i = 0; i < 200000; ++i) in[n++] = (char)('a' + i % 26);
  memcpy(in + n, "\r\n", 2); n += 2;
  for (i = 0; i < 5000; ++i) { memcpy(in + n, "line\r\n..x\r\n", 11); n += 11; }
  memcpy(in + n, ".\r\n", 3); n += 3;
  run_data(in, n, 0, cuts, &k, &r);
  check(r.result == END && r.used == n && r.outlen == 200001 + 5000 * 8,
        "blast big_message", "result %d used %zu/%zu out %zu", r.result, r.used, n, r.outlen);
  run_data(in, n, 100000, cuts, &k, &r);
  check(r.result == END && r.used == n && r.outlen == 100000 && r.overflow,
        "blast big_message_limit", "result %d used %zu/%zu out %zu overflow %d", r.result, r.used, n,
        r.outlen, r.overflow);
  in[150000] = '\n';
  run_data(in, n, 0, cuts, &k, &r);
  check(r.result == LF && r.used == 150001, "blast big_message_barelf", "result %d used %zu", r.result,
        r.used);
}

/* ---- differential test against the model ---- */

static unsigned long long rng;
static unsigned rnd(unsigned n)
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (unsigned)((rng >> 11) % n);
}

/* gen - a random input; mode 0: single bytes from a small alphabet (bare LFs frequent),
 * 1: tokens with CRLFs and headers (bare LF rare), 2: long lines with few specials,
 * 3: like 1 but ending in the end marker plus some trailing bytes */
static size_t gen(char *s, size_t max, int mode)
{
  static const char alpha[] = "\r\n.RrDdEeCcIiVvLlx \0\xff";
  static const char *const tokens[] = {
    "\r\n", "\r\n", "\r\n", "\r\n.\r\n", ".", "..", "\r", "\r\r\n", "\r\n.", ".\r", "Received: ",
    "received", "RECEIVED", "Delivered-To: ", "DELIVERED", "delivered", "X-Received: ",
    "Receive", "Deliver", "\r\n\r\n", "Subject: x", "a", "bc", "\xff\x80", " ", "\r.\r",
    "Received-SPF: ", "ReCeIvEd", "\0", ".\r\n", "\r\n..", "\n"
  };
  size_t ntok = sizeof tokens / sizeof tokens[0];
  int barelf = !rnd(3);  /* only a third of the inputs may hold a bare LF */
  size_t n = 0, want = 1 + rnd(mode == 2 ? (unsigned)max - 1 : 300);
  while (n < want && n < max - 16) {
    if (mode == 0) {
      char ch = alpha[rnd(sizeof alpha - 1)];
      if (ch == '\n' && !barelf && (!n || s[n - 1] != '\r')) s[n++] = '\r';
      s[n++] = ch;
    } else if (mode == 2) {
      unsigned k = rnd(100);
      if (k < 3) { s[n++] = '\r'; s[n++] = '\n'; }
      else if (k < 4) s[n++] = '\r';
      else if (k < 5) s[n++] = '.';
      else if (k == 5 && barelf && !rnd(1000)) s[n++] = '\n';
      else s[n++] = (char)('a' + rnd(26));
    } else {
      size_t t = rnd((unsigned)(ntok - (barelf ? 0 : 1)));  /* the last token is a bare LF */
      const char *tk = tokens[t];
      size_t tl = !*tk ? 1 : strlen(tk);
      memcpy(s + n, tk, tl);
      n += tl;
    }
  }
  if (mode == 3) {
    memcpy(s + n, "\r\n.\r\n", 5);
    n += 5;
    while (n < max && rnd(3)) s[n++] = "\r\n.xQ"[rnd(5)];
  }
  return n;
}

static int diff_one(const char *in, size_t len, unsigned long limit, const size_t *cuts,
                    char *mout, char *dout, const char **why)
{
  struct model m;
  struct sink k;
  struct run r;
  size_t mused;
  int mres;
  m.out = mout;
  mres = model_blast(in, len, limit, &m, &mused);
  k.s = dout; k.len = 0; k.cap = len + 1;
  run_data(in, len, limit, cuts, &k, &r);
  *why = 0;
  if (r.result != mres) *why = "result";
  else if (r.used != mused) *why = "end position";
  else if (r.short_more) *why = "BLAST_MORE left input";
  else if (r.tail_changed) *why = "input after the end modified";
  else if (r.hops != m.hops) *why = "hops";
  else if (mres != BLAST_BARELF && (r.outlen != m.outlen || memcmp(dout, mout, m.outlen)))
    *why = "output";
  else if (mres == BLAST_BARELF && (r.outlen > m.outlen || memcmp(dout, mout, r.outlen)))
    *why = "output (not a prefix of qmail's before the bare LF)";
  else if (mres != BLAST_BARELF && r.overflow != m.failed) *why = "overflow";
  else if (r.bytes != r.outlen) *why = "bytes counter";
  else if (limit && r.bytes > limit) *why = "bytes over limit";
  return *why == 0;
}

static void differential(void)
{
  static char in[70000], mout[70000], dout[70000];
  static const char *const modename[] = {"bytes", "tokens", "longlines", "tokens_end"};
  const char *x = getenv("T_DATA_SEED");
  unsigned long long seed = x ? strtoull(x, 0, 10) : 20261122ULL;
  long rounds = getenv("T_DATA_ROUNDS") ? atol(getenv("T_DATA_ROUNDS")) : 20000;
  int mode;
  for (mode = 0; mode < 4; ++mode) {
    long i, nend = 0, nlf = 0, nmore = 0, nhops = 0, nover = 0;
    char name[100];
    int ok = 1;
    rng = seed * 4 + (unsigned long long)mode + 1;
    snprintf(name, sizeof name, "blast differential_%s", modename[mode]);
    for (i = 0; i < (mode == 2 ? rounds / 10 : rounds) && ok; ++i) {
      size_t len = gen(in, mode == 2 ? 60000 : 4000, mode), cuts[64], j, c;
      unsigned long limit = rnd(4) ? 0 : rnd((unsigned)len + 2);
      const char *why;
      struct model m;
      size_t mu;
      int res;
      /* chunking: whole, bytewise, or random sizes */
      c = rnd(4);
      for (j = 0; j < 63; ++j)
        cuts[j] = c == 0 ? len + 1 : c == 1 ? 1 : 1 + rnd(c == 2 ? 8 : 2000);
      cuts[63] = 0;
      if (!diff_one(in, len, limit, cuts, mout, dout, &why)) {
        ok = check(0, name, "seed %llu round %ld: %s differs; input %s limit %lu chunking %zu", seed,
                   i, why, check_esc(in, len), limit, c);
        break;
      }
      m.out = mout;
      res = model_blast(in, len, limit, &m, &mu);
      nend += res == BLAST_END;
      nlf += res == BLAST_BARELF;
      nmore += res == BLAST_MORE;
      nhops += m.hops > 0;
      nover += m.failed;
    }
    if (ok) check(1, name, "%s", "");
    /* the generator must reach every outcome, or the comparison proves little */
    snprintf(name, sizeof name, "blast differential_%s_coverage", modename[mode]);
    {
      /* minimum share (1/n of the rounds; 0: not required) of end, bare LF, more, hops, overflow */
      static const long need[4][5] = {{500, 20, 20, 0, 50}, {20, 20, 20, 20, 50},
                                      {0, 20, 20, 0, 50}, {20, 20, 0, 20, 50}};
      long got[5];
      int j, enough = 1;
      got[0] = nend; got[1] = nlf; got[2] = nmore; got[3] = nhops; got[4] = nover;
      for (j = 0; j < 5; ++j)
        if (need[mode][j] && got[j] < i / need[mode][j]) enough = 0;
      check(enough, name, "%ld rounds: end %ld, bare LF %ld, more %ld, with hops %ld, overflow %ld",
            i, nend, nlf, nmore, nhops, nover);
    }
  }
}

/* the model itself, on a few cases from compat §4.7 (so a broken model cannot hide a bug) */
static void model_cases(void)
{
  static char out[100];
  struct model m;
  size_t used;
  int r;
  m.out = out;
  r = model_blast(S("a\r\n..b\r\n.\r\nQUIT"), 0, &m, &used);
  check(r == END && used == 11 && m.outlen == 5 && !memcmp(out, "a\n.b\n", 5), "model sanity_end",
        "r %d used %zu out %s", r, used, check_esc(out, m.outlen));
  r = model_blast(S("a\r.\nb"), 0, &m, &used);
  check(r == LF && used == 4, "model sanity_barelf", "r %d used %zu", r, used);
  r = model_blast(S("Received: x\r\nDelivered: y\r\n\r\nReceived: z\r\n.\r\n"), 0, &m, &used);
  check(r == END && m.hops == 2, "model sanity_hops", "r %d hops %lu", r, m.hops);
  r = model_blast(S("12345\r\n.\r\n"), 5, &m, &used);
  check(r == END && m.failed && m.outlen == 5, "model sanity_limit", "r %d failed %d out %zu", r,
        m.failed, m.outlen);
}

int main(void)
{
  model_cases();
  table_cases();
  hop_count_cases();
  split_header_cases();
  big_cases();
  differential();
  return check_done();
}
