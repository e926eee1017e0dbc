/* data.c - converts the client's DATA bytes to the message qmail-queue gets, exactly as
 * qmail-smtpd's blast(): CRLF becomes LF, a leading dot is removed, a CR not followed by LF is
 * kept, and the only end marker is CR LF . CR LF. Any LF not preceded by CR - including every
 * SMTP-smuggling variant (\n.\n, \r.\r... that ends in a bare LF) - is the fatal bare-LF error,
 * so a message can never be split. Hop counting looks at the first 9 bytes of each header line.
 * Most bytes take a fast path: memchr to the next LF and one copy per line; the byte-by-byte
 * state machine only runs at line starts, after a CR, and on the first 9 bytes of header lines.
 * Memory is constant: nothing is buffered here beyond the caller's input buffer. */
#include <string.h>
#include "data.h"

void blast_init(struct blast *b, unsigned long limit,
                void (*put)(void *ctx, const char *s, size_t len), void *ctx)
{
  memset(b, 0, sizeof *b);
  b->state = 1;
  b->inheader = 1;
  b->mx = b->my = b->mz = 1;
  b->limit = limit;
  b->put = put;
  b->ctx = ctx;
}

static void emit(struct blast *b, const char *s, size_t len)
{
  if (b->overflow) return;
  if (b->limit && len > b->limit - b->bytes) {
    len = b->limit - b->bytes;
    b->overflow = 1;
  }
  b->bytes += len;
  if (len) b->put(b->ctx, s, len);
}

/* header - qmail's hop and end-of-header tracking for one raw byte */
static void header(struct blast *b, char c)
{
  if (b->pos < 9) {
    if (c != "delivered"[b->pos] && c != "DELIVERED"[b->pos]) b->mz = 0;
    if (b->mz && b->pos == 8) ++b->hops;
    if (b->pos < 8 && c != "received"[b->pos] && c != "RECEIVED"[b->pos]) b->mx = 0;
    if (b->mx && b->pos == 7) ++b->hops;
    if (b->pos < 2 && c != "\r\n"[b->pos]) b->my = 0;
    if (b->my && b->pos == 1) b->inheader = 0;
    ++b->pos;
  }
  if (c == '\n') { b->pos = 0; b->mx = b->my = b->mz = 1; }
}

/* step - one byte through qmail's state machine */
static int step(struct blast *b, char c)
{
  if (b->inheader) header(b, c);
  switch (b->state) {
    case 0:
      if (c == '\n') return BLAST_BARELF;
      if (c == '\r') { b->state = 4; return BLAST_MORE; }
      break;
    case 1:
      if (c == '\n') return BLAST_BARELF;
      if (c == '.') { b->state = 2; return BLAST_MORE; }
      if (c == '\r') { b->state = 4; return BLAST_MORE; }
      b->state = 0;
      break;
    case 2:
      if (c == '\n') return BLAST_BARELF;
      if (c == '\r') { b->state = 3; return BLAST_MORE; }
      b->state = 0;
      break;
    case 3:
      if (c == '\n') return BLAST_END;
      emit(b, ".\r", 2);
      if (c == '\r') { b->state = 4; return BLAST_MORE; }
      b->state = 0;
      break;
    case 4:
      if (c == '\n') { b->state = 1; break; }
      if (c != '\r') { emit(b, "\r", 1); b->state = 0; }
      break;
  }
  emit(b, &c, 1);
  return BLAST_MORE;
}

int blast_feed(struct blast *b, char *in, size_t len, size_t *used)
{
  char *p = in, *end = in + len;
  while (p < end) {
    char *nl;
    int r;
    if ((b->inheader && b->pos < 9) || b->state > 1 ||
        (b->state == 1 && (*p == '.' || *p == '\r' || *p == '\n'))) {
      r = step(b, *p++);
      if (r != BLAST_MORE) { *used = (size_t)(p - in); return r; }
      continue;
    }
    /* fast path: inside a line (or at a line start with an ordinary byte) */
    nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) {
      if (end[-1] == '\r') { emit(b, p, (size_t)(end - 1 - p)); b->state = 4; }
      else { emit(b, p, (size_t)(end - p)); b->state = 0; }
      p = end;
      break;
    }
    if (nl == p || nl[-1] != '\r') { *used = (size_t)(nl + 1 - in); return BLAST_BARELF; }
    nl[-1] = '\n';
    emit(b, p, (size_t)(nl - p));
    b->state = 1;
    if (b->inheader) { b->pos = 0; b->mx = b->my = b->mz = 1; }
    p = nl + 1;
  }
  *used = (size_t)(p - in);
  return BLAST_MORE;
}
