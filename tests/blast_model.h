/* blast_model.h - the reference for data.c: qmail-smtpd.c's blast() and put(), one byte at a
 * time, as compat §4.7 describes them. Shared by t_data.c (the differential test) and
 * fuzz_smtpd.c. */
#ifndef BLAST_MODEL_H
#define BLAST_MODEL_H
#include <stddef.h>
#include "data.h"

struct model {
  char *out;
  size_t outlen;
  unsigned long bytestooverflow;
  int failed;
  unsigned long hops;
};

static void mput(struct model *m, char ch)
{
  if (m->bytestooverflow)
    if (!--m->bytestooverflow) m->failed = 1;
  if (!m->failed) m->out[m->outlen++] = ch;
}

/* model_blast - returns BLAST_END / BLAST_BARELF with *used = bytes read including the LF
 * that ended it, or BLAST_MORE with *used = len */
static int model_blast(const char *in, size_t len, unsigned long limit, struct model *m,
                       size_t *used)
{
  int state = 1, flaginheader = 1, pos = 0, flagmaybex = 1, flagmaybey = 1, flagmaybez = 1;
  size_t i;
  m->outlen = 0;
  m->failed = 0;
  m->hops = 0;
  m->bytestooverflow = limit ? limit + 1 : 0;
  for (i = 0; i < len; ++i) {
    char ch = in[i];
    if (flaginheader) {
      if (pos < 9) {
        if (ch != "delivered"[pos]) if (ch != "DELIVERED"[pos]) flagmaybez = 0;
        if (flagmaybez) if (pos == 8) ++m->hops;
        if (pos < 8)
          if (ch != "received"[pos]) if (ch != "RECEIVED"[pos]) flagmaybex = 0;
        if (flagmaybex) if (pos == 7) ++m->hops;
        if (pos < 2) if (ch != "\r\n"[pos]) flagmaybey = 0;
        if (flagmaybey) if (pos == 1) flaginheader = 0;
        ++pos;
      }
      if (ch == '\n') { pos = 0; flagmaybex = flagmaybey = flagmaybez = 1; }
    }
    switch (state) {
      case 0:
        if (ch == '\n') { *used = i + 1; return BLAST_BARELF; }
        if (ch == '\r') { state = 4; continue; }
        break;
      case 1: /* \r\n */
        if (ch == '\n') { *used = i + 1; return BLAST_BARELF; }
        if (ch == '.') { state = 2; continue; }
        if (ch == '\r') { state = 4; continue; }
        state = 0;
        break;
      case 2: /* \r\n + . */
        if (ch == '\n') { *used = i + 1; return BLAST_BARELF; }
        if (ch == '\r') { state = 3; continue; }
        state = 0;
        break;
      case 3: /* \r\n + .\r */
        if (ch == '\n') { *used = i + 1; return BLAST_END; }
        mput(m, '.');
        mput(m, '\r');
        if (ch == '\r') { state = 4; continue; }
        state = 0;
        break;
      case 4: /* + \r */
        if (ch == '\n') { state = 1; break; }
        if (ch != '\r') { mput(m, '\r'); state = 0; }
    }
    mput(m, ch);
  }
  *used = len;
  return BLAST_MORE;
}

#endif
