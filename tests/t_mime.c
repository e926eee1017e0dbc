/* t_mime - the streaming MIME reader: header fields and folding, Content-Type parameters,
 * RFC 2231/2047 file names, nesting and its bound, message/rfc822, first lines, the same
 * events whatever the chunking, base64 and zip names. */
#include "mime.h"
#include "tests/check.h"

/* a trace of events as text: H<depth>:field | P<depth>:type;cs;name;filename;enc | F:line | B<idx>:bytes */
static char trace[1 << 16];
static size_t tn;

static void add(const char *s, size_t len)
{
  if (tn + len >= sizeof trace) len = sizeof trace - 1 - tn;
  memcpy(trace + tn, s, len);
  tn += len;
  trace[tn] = 0;
}

static void cb_header(void *ctx, const struct mime_part *p, const char *f, size_t len)
{
  char b[32];
  (void)ctx;
  snprintf(b, sizeof b, "H%u:", p->depth);
  add(b, strlen(b)); add(f, len); add("|", 1);
}

static void cb_part(void *ctx, const struct mime_part *p)
{
  char b[1200];
  (void)ctx;
  snprintf(b, sizeof b, "P%u:%s;%s;%s;%s;%d|", p->depth, p->type, p->charset, p->name, p->filename, p->enc);
  add(b, strlen(b));
}

static void cb_first(void *ctx, const struct mime_part *p, const char *s, size_t len)
{
  (void)ctx; (void)p;
  add("F:", 2); add(s, len); add("|", 1);
}

static void cb_body(void *ctx, const struct mime_part *p, const char *s, size_t len)
{
  char b[32];
  (void)ctx;
  snprintf(b, sizeof b, "B%lu:", p->index);
  add(b, strlen(b)); add(s, len);
}

static struct mime m;

static void zipcb(void *ctx, const char *name, size_t len, int central)
{
  char *g = ctx;
  strcat(g, central ? "C:" : "L:");
  strncat(g, name, len);
  strcat(g, " ");
}

/* run - feed msg in chunks of step bytes (0: all at once); returns the trace */
static const char *run(const char *msg, size_t len, size_t step)
{
  struct mime_cb cb = {cb_header, cb_part, cb_first, cb_body, 0};
  size_t i;
  tn = 0; trace[0] = 0;
  mime_init(&m, &cb);
  if (!step) step = len ? len : 1;
  for (i = 0; i < len; i += step) mime_feed(&m, msg + i, len - i < step ? len - i : step);
  mime_end(&m);
  return trace;
}

static void same_any_chunking(const char *name, const char *msg)
{
  static char whole[sizeof trace];
  size_t len = strlen(msg), step;
  int ok = 1;
  strcpy(whole, run(msg, len, 0));
  for (step = 1; step < 8 && ok; ++step)
    if (strcmp(run(msg, len, step), whole)) ok = 0;
  check(ok, name, "step %zu: %s vs %s", step - 1, check_esc(trace, tn), check_esc(whole, strlen(whole)));
}

static const char nested[] =
  "From: a@b\n"
  "Subject: =?UTF-8?B?aGVsbG8=?= world\n"
  "Content-Type: multipart/mixed;\n"
  "\tboundary=\"outer\"\n"
  "\n"
  "preamble line\n"
  "--outer\n"
  "Content-Type: text/plain; charset=KOI8-R\n"
  "\n"
  "hello\n"
  "--outer\n"
  "Content-Type: multipart/alternative; boundary=inner\n"
  "\n"
  "--inner\n"
  "Content-Type: text/html\n"
  "\n"
  "<p>x</p>\n"
  "--inner--\n"
  "--outer\n"
  "Content-Type: application/octet-stream; name=\"a.bin\"\n"
  "Content-Disposition: attachment; filename*=UTF-8''evil%2Eexe\n"
  "Content-Transfer-Encoding: base64\n"
  "\n"
  "TVqQAAMAAAAEAAAA\n"
  "--outer--\n"
  "epilogue\n";

int main(void)
{
  const char *t;
  char out[300];

  t = run(nested, strlen(nested), 0);
  check(strstr(t, "H0:Content-Type: multipart/mixed;\tboundary=\"outer\"|") != 0, "folding unfolded",
        "%s", check_esc(t, strlen(t)));
  check(strstr(t, "P1:text/plain;koi8-r;;;0|F:hello\n|B1:hello\nH1:") != 0, "text part charset",
        "%s", check_esc(t, strlen(t)));
  check(strstr(t, "P2:text/html;;;;0|F:<p>x</p>\n|B3:<p>x</p>\nH1:") != 0, "nested part depth 2",
        "%s", check_esc(t, strlen(t)));
  check(strstr(t, "P1:application/octet-stream;;a.bin;evil.exe;1|F:TVqQAAMAAAAEAAAA\n|") != 0,
        "rfc2231 filename, base64", "%s", check_esc(t, strlen(t)));
  check(strstr(t, "F:preamble line\n|") != 0, "preamble first line", "%s", check_esc(t, strlen(t)));
  check(!strstr(t, "epilogue") && !strstr(t, "--outer"), "boundaries and epilogue not body",
        "%s", check_esc(t, strlen(t)));
  check_long("no flags", (long)m.flags, 0);
  check_long("part count", (long)m.nparts, 4);
  same_any_chunking("same events in any chunking", nested);

  /* parameters */
  {
    const char *v = "attachment; filename=\"=?iso-8859-1?Q?r=E9sum=E9.exe?=\"";
    mime_param(v, strlen(v), "filename", out, sizeof out);
  }
  check_str("rfc2047 Q filename", out, "r\xe9sum\xe9.exe");
  {
    const char *v = "attachment; filename*0*=us-ascii'en'a%20b; filename*1=\".e\"; filename*2=xe";
    mime_param(v, strlen(v), "filename", out, sizeof out);
    check_str("rfc2231 continuations", out, "a b.exe");
  }
  {
    const char *v = "attachment; filename=plain.txt; filename*=utf-8''real.exe";
    mime_param(v, strlen(v), "filename", out, sizeof out);
    check_str("rfc2231 wins over plain", out, "real.exe");
  }
  {
    const char *v = "text/plain; name=\"q\\\"x.scr\"";
    mime_param(v, strlen(v), "name", out, sizeof out);
    check_str("quoted pair", out, "q\"x.scr");
  }
  {
    char longv[1200];
    memset(longv, 0, sizeof longv);
    strcpy(longv, "attachment; filename=\"");
    memset(longv + strlen(longv), 'a', 600);
    strcat(longv, ".exe\"");
    mime_param(longv, strlen(longv), "filename", out, sizeof out);
    check(strlen(out) == MIME_NAME_MAX && !strcmp(out + strlen(out) - 4, ".exe"),
          "long name keeps its extension", "%zu %s", strlen(out), out + strlen(out) - 8);
  }
  check_long("words B+B adjacent", (long)mime_words("=?utf-8?B?YQ==?= =?utf-8?B?Yg==?=", 33, out, sizeof out), 2);
  check_str("words joined", out, "ab");
  {
    size_t pos = 0, cl;
    const char *s = "x =?GB2312?B?xxx?= y";
    const char *cs = mime_ewcharset(s, strlen(s), &pos, &cl);
    check(cs && cl == 6 && !strncmp(cs, "GB2312", 6), "encoded word charset", "%s", cs ? cs : "none");
  }

  /* message/rfc822 */
  {
    const char *msg = "Content-Type: multipart/mixed; boundary=b\n\n--b\n"
                      "Content-Type: message/rfc822\n\n"
                      "Subject: inner\nContent-Type: text/plain; name=x.pif\n\nbody\n--b--\n";
    t = run(msg, strlen(msg), 0);
    check(strstr(t, "P1:message/rfc822;;;;0|H2:Subject: inner|") && strstr(t, "P2:text/plain;;x.pif;;0|F:body\n|"),
          "message/rfc822 re-enters header mode", "%s", check_esc(t, strlen(t)));
  }

  /* bounds: depth, header length, missing boundary, unclosed */
  {
    static char deep[64 * 1024];
    size_t n = 0;
    int i;
    for (i = 0; i < 40; ++i)
      n += (size_t)sprintf(deep + n, "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i, i);
    n += (size_t)sprintf(deep + n, "\nleaf\n");
    t = run(deep, n, 0);
    check((m.flags & MIME_F_DEPTH) && (m.flags & MIME_F_UNCLOSED) && m.nb == MIME_DEPTH,
          "depth bound", "flags %u nb %u", m.flags, m.nb);
  }
  {
    static char big[200000];
    size_t n;
    strcpy(big, "Subject: ");
    n = strlen(big);
    memset(big + n, 'x', 150000);
    n += 150000;
    memcpy(big + n, "\n\tmore\nContent-Type: text/plain; name=y.exe\n\nz\n", 47);
    n += 47;
    t = run(big, n, 4096);
    check((m.flags & MIME_F_HDRLONG) && strstr(t, "P0:text/plain;;y.exe;;0|"), "long header cut, next field read",
          "flags %u", m.flags);
  }
  {
    const char *msg = "Content-Type: multipart/mixed\n\n--x\nContent-Type: text/plain\n\nbody\n";
    t = run(msg, strlen(msg), 0);
    check((m.flags & MIME_F_NOBND) && strstr(t, "B0:--x\n"), "multipart without boundary is a leaf",
          "flags %u %s", m.flags, check_esc(t, strlen(t)));
  }
  {
    const char *msg = "Content-Type: multipart/mixed; boundary=q\n\n--q\nContent-Type: text/plain\n--q\n"
                      "Content-Disposition: attachment; filename=a.vbs\n\nx\n";
    t = run(msg, strlen(msg), 0);
    check((m.flags & MIME_F_UNCLOSED) && strstr(t, "P1:text/plain;;;;0|H1:Content-Disposition: attachment; filename=a.vbs|P1:;;;a.vbs;0|"),
          "boundary inside a part header", "%s", check_esc(t, strlen(t)));
  }
  {
    /* first line cut at MIME_LINE_MAX, a long body line that starts with '-' */
    static char msg[5000];
    size_t n = (size_t)sprintf(msg, "Content-Type: multipart/mixed; boundary=q\n\n--q\n\n");
    memset(msg + n, '-', 3000); n += 3000;
    msg[n++] = '\n';
    n += (size_t)sprintf(msg + n, "--q--\n");
    t = run(msg, n, 0);
    check(strstr(t, "F:") && strlen(strstr(t, "F:")) > MIME_LINE_MAX && (m.flags & MIME_F_UNCLOSED) == 0,
          "long dash line is not a boundary", "flags %u", m.flags);
  }
  same_any_chunking("chunking: rfc822 and broken parts",
                    "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\n"
                    "Content-Type: multipart/mixed; boundary=c\n\n--c\n\nx\n--b\nA: b\n  c\n\n-y\n--b--\n");

  /* base64 and zip */
  {
    struct mime_b64 b = {0, 0};
    unsigned char o[64];
    size_t n = mime_b64(&b, "aGVs", 4, o);
    n += mime_b64(&b, "bG8=\n", 5, o + n);
    check_bytes("base64 across calls", (char *)o, n, "hello", 5);
  }
  {
    /* a local header and a central directory entry, fed one byte at a time */
    static unsigned char zip[200];
    static char got[400];
    struct mime_zip z;
    size_t n = 0, i;
    memcpy(zip, "PK\3\4", 4); n = 4;
    memset(zip + n, 0, 26); zip[n + 22] = 7; n += 26;
    memcpy(zip + n, "doc.exe", 7); n += 7;
    memcpy(zip + n, "xxxxPK\1\2", 8); n += 8;
    memset(zip + n, 0, 42); zip[n + 24] = 5; n += 42;
    memcpy(zip + n, "b.scr", 5); n += 5;
    got[0] = 0;
    mime_zip_init(&z, zipcb, got);
    for (i = 0; i < n; ++i) mime_zip_feed(&z, zip + i, 1);
    check_long("zip entries", (long)z.entries, 2);
    check_str("zip names, local and central", got, "L:doc.exe C:b.scr ");
  }
  return check_done();
}
