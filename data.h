/* data.h - the DATA byte stream: qmail's conversion, end-of-data, hop count and size */
#ifndef DATA_H
#define DATA_H
#include <stddef.h>

enum { BLAST_MORE = 0, BLAST_END = 1, BLAST_BARELF = 2 };

struct blast {
  /* qmail's states: 0 in a line, 1 at line start (after CRLF), 2 CRLF ".", 3 CRLF "." CR,
   * 4 after a CR that was not written yet */
  int state;
  int inheader, pos, mx, my, mz;
  unsigned long hops;   /* header lines starting "received" or "delivered", any case */
  unsigned long bytes;  /* converted bytes (LF line ends, dots unstuffed) */
  unsigned long limit;  /* databytes, 0 = none */
  int overflow;         /* bytes went past limit: nothing more is written */
  void (*put)(void *ctx, const char *s, size_t len);
  void *ctx;
};

void blast_init(struct blast *b, unsigned long limit,
                void (*put)(void *ctx, const char *s, size_t len), void *ctx);
/* blast_feed - convert in[0..len); *used = bytes consumed (the input after the final
 * CRLF.CRLF is left alone). in may be modified. BLAST_MORE, BLAST_END or BLAST_BARELF. */
int blast_feed(struct blast *b, char *in, size_t len, size_t *used);
#endif
