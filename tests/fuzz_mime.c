/* fuzz_mime - libFuzzer target for the MIME reader (mime.c), which sees every DATA byte when a
 * content check is on. The input is fed whole and again in two chunks split at a position
 * taken from the first byte: the events (a hash of every callback and its bytes) must be the
 * same, every string handed out must be NUL-terminated within its bound, and the parameter,
 * encoded-word, base64 and zip helpers run over the input too.
 * Build: make tests/fuzz_mime.  Run: tests/fuzz_mime -max_total_time=60 tests/fuzz-mime-seeds */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mime.h"

static unsigned long h;

static void fail(const char *why)
{
  fprintf(stderr, "fuzz_mime: invariant broken: %s\n", why);
  abort();
}

static void mix(int tag, const char *s, size_t len)
{
  size_t i;
  h = h * 31 + (unsigned long)tag;
  for (i = 0; i < len; ++i) h = h * 131 + (unsigned char)s[i];
}

static void bounded(const char *s, size_t max)
{
  if (!memchr(s, 0, max + 1)) fail("string not terminated within its bound");
}

static void cb_header(void *ctx, const struct mime_part *p, const char *f, size_t len)
{
  (void)ctx;
  if (len > MIME_HDR_MAX) fail("header longer than MIME_HDR_MAX");
  mix(1 + (int)p->depth, f, len);
}

static void cb_part(void *ctx, const struct mime_part *p)
{
  (void)ctx;
  bounded(p->type, MIME_TYPE_MAX);
  bounded(p->charset, MIME_CHARSET_MAX);
  bounded(p->name, MIME_NAME_MAX);
  bounded(p->filename, MIME_NAME_MAX);
  bounded(p->bnd, MIME_BND_MAX);
  if (p->depth > 2 * MIME_DEPTH) fail("depth beyond the bound");
  mix(100, p->type, strlen(p->type));
  mix(101, p->filename, strlen(p->filename));
  mix(102, p->name, strlen(p->name));
  mix(103, p->charset, strlen(p->charset));
}

static void cb_first(void *ctx, const struct mime_part *p, const char *s, size_t len)
{
  (void)ctx; (void)p;
  if (len > MIME_LINE_MAX) fail("first line longer than MIME_LINE_MAX");
  mix(200, s, len);
}

static void cb_body(void *ctx, const struct mime_part *p, const char *s, size_t len)
{
  (void)ctx;
  /* body bytes may come in different pieces: hash them bytewise with the part index only */
  size_t i;
  for (i = 0; i < len; ++i) h = h * 7 + (unsigned char)s[i] + p->index;
}

static void zipcb(void *ctx, const char *name, size_t len, int central)
{
  (void)ctx; (void)central;
  if (len > MIME_NAME_MAX || name[len]) fail("zip name bound");
}

static struct mime m;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct mime_cb cb = {cb_header, cb_part, cb_first, cb_body, 0};
  const char *s = (const char *)data + 1;
  size_t len, split;
  unsigned long h1;
  unsigned flags1;
  unsigned long parts1;
  if (size < 1) return 0;
  len = size - 1;
  split = len ? data[0] * 257u % (len + 1) : 0;

  h = 0;
  mime_init(&m, &cb);
  mime_feed(&m, s, len);
  mime_end(&m);
  h1 = h; flags1 = m.flags; parts1 = m.nparts;

  h = 0;
  mime_init(&m, &cb);
  mime_feed(&m, s, split);
  mime_feed(&m, s + split, len - split);
  mime_end(&m);
  if (h != h1 || m.flags != flags1 || m.nparts != parts1) fail("chunking changed the events");

  {
    char out[MIME_NAME_MAX + 1];
    size_t pos = 0, cl;
    mime_param(s, len, "filename", out, sizeof out);
    bounded(out, MIME_NAME_MAX);
    mime_param(s, len, "name", out, 8);
    bounded(out, 7);
    if (mime_words(s, len, out, sizeof out) > MIME_NAME_MAX) fail("words bound");
    while (mime_ewcharset(s, len, &pos, &cl))
      if (pos > len) fail("ewcharset past the end");
  }
  {
    unsigned char *o = malloc(len * 3 / 4 + 4);
    struct mime_b64 b = {0, 0};
    struct mime_zip z;
    size_t n = mime_b64(&b, s, len, o);
    if (n > len * 3 / 4 + 3) fail("base64 output bound");
    mime_zip_init(&z, zipcb, 0);
    mime_zip_feed(&z, (const unsigned char *)s, len);
    free(o);
  }
  return 0;
}
