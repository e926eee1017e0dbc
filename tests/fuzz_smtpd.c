/* fuzz_smtpd - libFuzzer target for the two modules that see raw client bytes first.
 * addr_parse: the input as a C string, with and without a localiphost; the result is
 * NUL-terminated, holds no NUL, is no longer than the input (plus localiphost), agrees with
 * ADDR_MAX, and the two runs differ only by a rewrite of a bracketed IP after the last @.
 * blast_feed: the input (after two control bytes: split position and databytes limit) fed in two
 * chunks; *used never exceeds the chunk, bytes never exceed the limit, the output is never
 * longer than the input consumed, and output, hops, result and end position equal those of a
 * byte-by-byte copy of qmail-smtpd's blast() (the same model as in t_data.c).
 * Build: make tests/fuzz_smtpd (clang -fsanitize=fuzzer,address,undefined).
 * Run:   tests/fuzz_smtpd -max_total_time=600 tests/fuzz-corpus tests/fuzz-seeds */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "addr.h"
#include "data.h"
#include "tests/blast_model.h"

static void fail(const char *why)
{
  fprintf(stderr, "fuzz_smtpd: invariant broken: %s\n", why);
  abort();
}

/* ---- addr_parse ---- */

static void fuzz_addr(const uint8_t *data, size_t size)
{
  static stralloc a, b, lip;
  char *s = malloc(size + 1);
  size_t slen;
  int r, rl;
  if (!s) return;
  memcpy(s, data, size);
  s[size] = 0;
  slen = strlen(s);
  if (!lip.len && !stralloc_copys(&lip, "lip.example.test")) fail("nomem");
  r = addr_parse(&a, s, 0);
  if (r != ADDR_OK && r != ADDR_TOOLONG) fail("addr_parse: unexpected return without liphost");
  if (a.s[a.len] || strlen(a.s) != a.len) fail("addr_parse: not a C string of len bytes");
  if (a.len > slen) fail("addr_parse: longer than its input");
  if ((r == ADDR_OK) != (a.len <= ADDR_MAX)) fail("addr_parse: return disagrees with ADDR_MAX");
  rl = addr_parse(&b, s, &lip);
  if (rl == ADDR_NOIPME) { free(s); return; }
  if (rl != ADDR_OK && rl != ADDR_TOOLONG) fail("addr_parse: unexpected return with liphost");
  if (b.s[b.len] || strlen(b.s) != b.len) fail("addr_parse: liphost: not a C string");
  if (b.len > slen + lip.len) fail("addr_parse: liphost: too long");
  if ((rl == ADDR_OK) != (b.len <= ADDR_MAX)) fail("addr_parse: liphost: return disagrees");
  if (a.len != b.len || memcmp(a.s, b.s, a.len)) {
    /* only a rewrite: same text up to the last @, then [d.d.d.d] became lip */
    const char *d = addr_domain(a.s, a.len);
    unsigned char ip[4];
    size_t pre;
    if (!d || !addr_bracketip(d, ip)) fail("addr_parse: changed without a bracketed IP");
    pre = (size_t)(d - a.s);
    if (b.len != pre + lip.len || memcmp(a.s, b.s, pre) || memcmp(b.s + pre, lip.s, lip.len))
      fail("addr_parse: rewrite is not prefix + liphost");
  }
  free(s);
}

/* ---- blast: data.c against the model in blast_model.h ---- */

struct sink {
  char *s;
  size_t len, cap;
};

static void sinkput(void *ctx, const char *s, size_t len)
{
  struct sink *k = ctx;
  if (len > k->cap - k->len) fail("blast: output longer than input");
  memcpy(k->s + k->len, s, len);
  k->len += len;
}

static void fuzz_blast(const uint8_t *data, size_t size)
{
  struct blast b;
  struct sink k;
  struct model m;
  size_t len, cut, used = 0, off = 0, mused;
  unsigned long limit;
  char *in, *buf, *mout;
  int r = BLAST_MORE, mr, piece;
  if (size < 2) return;
  len = size - 2;
  cut = len ? data[0] % (len + 1) : 0;
  limit = data[1] < 128 ? 0 : (unsigned long)(data[1] - 127);
  in = malloc(len + 1);
  buf = malloc(len + 1);
  k.s = malloc(len + 1);
  mout = malloc(len + 1);
  if (!in || !buf || !k.s || !mout) fail("nomem");
  memcpy(in, data + 2, len);
  memcpy(buf, in, len);
  k.len = 0;
  k.cap = len;
  blast_init(&b, limit, sinkput, &k);
  for (piece = 0; piece < 2 && r == BLAST_MORE; ++piece) {
    size_t n = piece ? len - off : cut;
    used = (size_t)-1;
    r = blast_feed(&b, buf + off, n, &used);
    if (used > n) fail("blast: *used > len");
    if (r == BLAST_MORE && used != n) fail("blast: BLAST_MORE without consuming everything");
    if (r != BLAST_MORE && memcmp(buf + off + used, in + off + used, n - used))
      fail("blast: input after the end modified");
    off += used;
  }
  if (limit && b.bytes > limit) fail("blast: bytes > limit");
  if (b.bytes != k.len) fail("blast: bytes counter differs from output");
  if (k.len > off) fail("blast: output longer than the input consumed");
  m.out = mout;
  mr = model_blast(in, len, limit, &m, &mused);
  if (r != mr) fail("blast: result differs from qmail");
  if (off != mused) fail("blast: end position differs from qmail");
  if (b.hops != m.hops) fail("blast: hops differ from qmail");
  if (r != BLAST_BARELF) {
    if (k.len != m.outlen || memcmp(k.s, mout, k.len)) fail("blast: output differs from qmail");
    if (b.overflow != m.failed) fail("blast: overflow differs from qmail");
  } else if (k.len > m.outlen || memcmp(k.s, mout, k.len))
    fail("blast: output before a bare LF is not a prefix of qmail's");
  free(in);
  free(buf);
  free(k.s);
  free(mout);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  fuzz_addr(data, size);
  fuzz_blast(data, size);
  return 0;
}
