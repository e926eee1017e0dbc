/* mime.h - a streaming MIME reader over the converted DATA bytes (LF line ends), in constant
 * memory: header fields of the message and of every part (unfolded, cut at MIME_HDR_MAX),
 * Content-Type (type, boundary, charset, name), Content-Disposition filename (RFC 2231 and
 * RFC 2047 forms decoded), Content-Transfer-Encoding, nesting up to MIME_DEPTH boundaries,
 * message/rfc822 parts. Broken MIME sets flags (facts), it never fails. Plus two small
 * streaming helpers for the content checks: a base64 decoder and a zip file-name lister. */
#ifndef MIME_H
#define MIME_H
#include <stddef.h>

#define MIME_DEPTH 16        /* open boundaries (and message/rfc822 levels) */
#define MIME_BND_MAX 100     /* boundary length (RFC 2046: 70) */
#define MIME_HDR_MAX 2048    /* one unfolded header field; the rest is dropped (flagged) */
#define MIME_LINE_MAX 1024   /* first line of a part body (qmail-ldap's execcheck bound) */
#define MIME_NAME_MAX 255    /* a file name; a longer one keeps its tail (the extension) */
#define MIME_TYPE_MAX 100
#define MIME_CHARSET_MAX 40

enum {
  MIME_F_HDRLONG = 1,   /* a header field longer than MIME_HDR_MAX */
  MIME_F_DEPTH = 2,     /* nesting deeper than MIME_DEPTH: the deeper part is read as a leaf */
  MIME_F_NOBND = 4,     /* multipart without a boundary parameter */
  MIME_F_UNCLOSED = 8,  /* the message ended inside a multipart */
  MIME_F_NUL = 16       /* a NUL byte in a header */
};
enum { MIME_ENC_OTHER = 0, MIME_ENC_BASE64 = 1, MIME_ENC_QP = 2 };

struct mime_part {
  unsigned depth;              /* 0: the message itself */
  unsigned long index;         /* 0 for the message, then 1, 2... in order of appearance */
  int enc;                     /* MIME_ENC_* */
  char type[MIME_TYPE_MAX + 1];        /* lower case "text/plain"; "" without Content-Type */
  char charset[MIME_CHARSET_MAX + 1];  /* lower case */
  char name[MIME_NAME_MAX + 1];        /* Content-Type name=, decoded */
  char filename[MIME_NAME_MAX + 1];    /* Content-Disposition filename=, decoded */
  char bnd[MIME_BND_MAX + 1];          /* boundary= */
};

/* callbacks; any may be 0. The part pointer is valid during the call. */
struct mime_cb {
  /* a complete header field "Name: value", folding removed, cut at MIME_HDR_MAX */
  void (*header)(void *ctx, const struct mime_part *p, const char *f, size_t len);
  /* the end of a header block (the message's or a part's): p is complete */
  void (*part)(void *ctx, const struct mime_part *p);
  /* the first line after a header block's blank line (with its LF, cut at MIME_LINE_MAX) */
  void (*firstline)(void *ctx, const struct mime_part *p, const char *s, size_t len);
  /* body bytes of a leaf part (not multipart, not message/rfc822), boundary lines removed */
  void (*body)(void *ctx, const struct mime_part *p, const char *s, size_t len);
  void *ctx;
};

struct mime {
  struct mime_cb cb;
  int state;               /* header, body, skip (preamble/epilogue) */
  int atstart;             /* at the start of a line */
  int buffering;           /* the current line goes to lbuf */
  int first;               /* the next body line is the first after the header block */
  int leaf;                /* body bytes go to cb.body */
  int cont;                /* header: the current line continues a field */
  int newfield;            /* header: the current line started a field */
  size_t linestart;        /* header: where the current line starts in hbuf */
  size_t llen, hlen;
  unsigned long nparts;
  unsigned flags;
  unsigned nb;             /* open boundaries */
  unsigned rfc;            /* message/rfc822 levels inside the innermost boundary */
  unsigned rfc_at[MIME_DEPTH];
  unsigned char blen[MIME_DEPTH];
  char bnd[MIME_DEPTH][MIME_BND_MAX + 1];
  struct mime_part part;
  char lbuf[MIME_LINE_MAX];
  char hbuf[MIME_HDR_MAX];
};

void mime_init(struct mime *m, const struct mime_cb *cb);
void mime_feed(struct mime *m, const char *s, size_t len);
void mime_end(struct mime *m);

/* mime_param - the value of parameter attr (lower case, e.g. "filename") in a header value
 * such as "attachment; filename*=utf-8''a%2Eexe", RFC 2231 continuations and RFC 2047
 * encoded words decoded; the tail is kept when longer than max-1. 1 found, 0 not. */
int mime_param(const char *v, size_t len, const char *attr, char *out, size_t max);
/* mime_words - decode RFC 2047 encoded words of s into out (max bytes, NUL-terminated) */
size_t mime_words(const char *s, size_t len, char *out, size_t max);
/* mime_ewcharset - the charset of the next encoded word in s[*pos..len): returns its start
 * and sets *cslen and *pos past it, or 0 when there is none */
const char *mime_ewcharset(const char *s, size_t len, size_t *pos, size_t *cslen);

/* streaming base64: returns the bytes written to out (at most len*3/4+3) */
struct mime_b64 { unsigned long acc; int bits; };
size_t mime_b64(struct mime_b64 *b, const char *in, size_t len, unsigned char *out);

/* zip: names from local headers (PK\3\4) and the central directory (PK\1\2), streaming */
struct mime_zip {
  int state;               /* 0 search, 1 fixed header, 2 name */
  unsigned sig;            /* the last four bytes */
  unsigned need, got, namelen, central;
  size_t nlen;
  unsigned long entries;
  unsigned char fix[46];
  char name[MIME_NAME_MAX + 1];
  void (*cb)(void *ctx, const char *name, size_t len, int central);
  void *ctx;
};
void mime_zip_init(struct mime_zip *z, void (*cb)(void *, const char *, size_t, int), void *ctx);
void mime_zip_feed(struct mime_zip *z, const unsigned char *s, size_t len);
#endif
