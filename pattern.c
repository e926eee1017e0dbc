/* pattern.c - globs, a small backtracking regular-expression machine, CIDR ranges (see
 * pattern.h). The regex compiler parses the pattern into a tree, then writes a program for a
 * backtracking machine (Thompson's instructions: CHAR, ANY, CLASS, SPLIT, JMP, BOL, EOL,
 * MATCH) with absolute 16-bit jump targets, so the program is plain bytes that can be
 * stored in a cdb and run where it lies. In front of it stands a prefilter: the longest
 * literal every match must contain (only when the top level is a plain sequence); the
 * matcher runs the machine only when the subject contains it, which is what makes a list of
 * 200 dynamic-PTR patterns cheap. A step budget bounds every match: a pathological pattern
 * gives up (no match) instead of taking the session's time. */
#include <string.h>
#include <arpa/inet.h>
#include "pattern.h"

int pat_glob(const char *p, const char *s)
{
  const char *star = 0, *back = 0;
  for (;;) {
    if (*p == '*') { star = ++p; back = s; continue; }
    if (*s && (*p == '?' || *p == *s)) { ++p; ++s; continue; }
    if (!*s && !*p) return 1;
    if (!star || !*back) return 0;
    p = star;
    s = ++back;
  }
}

/* ---- regex: the tree */

enum { N_CHAR, N_ANY, N_CLASS, N_CAT, N_ALT, N_STAR, N_PLUS, N_QUEST, N_REP, N_BOL, N_EOL, N_EMPTY };
enum { OP_CHAR = 1, OP_ANY, OP_CLASS, OP_SPLIT, OP_JMP, OP_BOL, OP_EOL, OP_MATCH };
#define NODES_MAX 512
#define CLASSES_MAX 64
#define PROG_MAX 16000
#define REP_MAX 32
#define STEPS_MAX 20000

struct node { int type, l, r, min, max; unsigned char c; };
struct re {
  const char *p;
  const char *err;
  struct node n[NODES_MAX];
  int nn;
  unsigned char cls[CLASSES_MAX][32];
  int ncls;
};

static int node(struct re *r, int type, int l, int rr)
{
  if (r->nn >= NODES_MAX) { r->err = "pattern too complex"; return -1; }
  r->n[r->nn].type = type; r->n[r->nn].l = l; r->n[r->nn].r = rr;
  r->n[r->nn].min = r->n[r->nn].max = 0; r->n[r->nn].c = 0;
  return r->nn++;
}

static unsigned char lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }
static void setbit(unsigned char *set, unsigned c) { set[c >> 3] |= (unsigned char)(1 << (c & 7)); }

static int classof(struct re *r, const char *which)
{
  unsigned char *set;
  unsigned c;
  if (r->ncls >= CLASSES_MAX) { r->err = "too many classes"; return -1; }
  set = r->cls[r->ncls];
  memset(set, 0, 32);
  for (c = 0; c < 256; ++c)
    if ((*which == 'd' && c >= '0' && c <= '9') ||
        (*which == 'w' && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) ||
        (*which == 's' && (c == ' ' || c == '\t')))
      setbit(set, c);
  return node(r, N_CLASS, r->ncls++, 0);
}

static int parse_alt(struct re *r, int depth);

static int parse_bracket(struct re *r)
{
  unsigned char set[32];
  int neg = 0, first = 1, k;
  unsigned c;
  memset(set, 0, sizeof set);
  if (*r->p == '^') { neg = 1; ++r->p; }
  while (*r->p && (first || *r->p != ']')) {
    unsigned lo = (unsigned char)*r->p++, hi;  /* POSIX: a backslash is itself here */
    first = 0;
    if (lo == '[' && (*r->p == ':' || *r->p == '=' || *r->p == '.')) {
      r->err = "[: :] classes are not supported (write the characters)";
      return -1;
    }
    hi = lo;
    if (r->p[0] == '-' && r->p[1] && r->p[1] != ']') {
      hi = (unsigned char)r->p[1];
      r->p += 2;
      if (hi < lo) { r->err = "bad range in []"; return -1; }
    }
    for (c = lo; c <= hi; ++c) setbit(set, lower((unsigned char)c));
  }
  if (*r->p != ']') { r->err = "missing ]"; return -1; }
  ++r->p;
  if (neg) for (c = 0; c < 32; ++c) set[c] = (unsigned char)~set[c];
  if (r->ncls >= CLASSES_MAX) { r->err = "too many classes"; return -1; }
  memcpy(r->cls[r->ncls], set, 32);
  k = node(r, N_CLASS, r->ncls++, 0);
  return k;
}

static int parse_atom(struct re *r, int depth)
{
  unsigned char c = (unsigned char)*r->p++;
  int k;
  switch (c) {
    case '(':
      if (depth > 20) { r->err = "groups nested too deep"; return -1; }
      k = parse_alt(r, depth + 1);
      if (k < 0) return -1;
      if (*r->p != ')') { r->err = "missing )"; return -1; }
      ++r->p;
      return k;
    case '[': return parse_bracket(r);
    case '.': return node(r, N_ANY, 0, 0);
    case '^': return node(r, N_BOL, 0, 0);
    case '$': return node(r, N_EOL, 0, 0);
    case '*': case '+': case '?': case '{': r->err = "quantifier without an operand"; return -1;
    case '\\':
      c = (unsigned char)*r->p++;
      if (!c) { r->err = "trailing \\"; return -1; }
      if (c == 'd' || c == 'w' || c == 's') return classof(r, (const char *)&c);
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        r->err = "unsupported escape";
        return -1;
      }
      break;
  }
  k = node(r, N_CHAR, 0, 0);
  if (k >= 0) r->n[k].c = lower(c);
  return k;
}

static int number(struct re *r, int *v)
{
  int got = 0;
  *v = 0;
  while (*r->p >= '0' && *r->p <= '9') {
    *v = *v * 10 + (*r->p++ - '0');
    if (*v > 1000) return -1;
    got = 1;
  }
  return got ? 0 : -1;
}

static int parse_repeat(struct re *r, int depth)
{
  int k = parse_atom(r, depth);
  while (k >= 0 && *r->p && strchr("*+?{", *r->p)) {
    char q = *r->p++;
    if (q == '{') {
      int min, max;
      if (number(r, &min) == -1) { r->err = "bad {m,n}"; return -1; }
      max = min;
      if (*r->p == ',') {
        ++r->p;
        if (*r->p == '}') max = -1;
        else if (number(r, &max) == -1) { r->err = "bad {m,n}"; return -1; }
      }
      if (*r->p++ != '}' || (max >= 0 && max < min) || min > REP_MAX || max > REP_MAX) {
        r->err = "bad {m,n}";
        return -1;
      }
      k = node(r, N_REP, k, 0);
      if (k >= 0) { r->n[k].min = min; r->n[k].max = max; }
    } else
      k = node(r, q == '*' ? N_STAR : q == '+' ? N_PLUS : N_QUEST, k, 0);
  }
  return k;
}

static int parse_cat(struct re *r, int depth)
{
  int k = -2;
  while (*r->p && *r->p != '|' && *r->p != ')') {
    int a = parse_repeat(r, depth);
    if (a < 0) return -1;
    k = k == -2 ? a : node(r, N_CAT, k, a);
    if (k < 0) return -1;
  }
  return k == -2 ? node(r, N_EMPTY, 0, 0) : k;
}

static int parse_alt(struct re *r, int depth)
{
  int k = parse_cat(r, depth);
  while (k >= 0 && *r->p == '|') {
    int b;
    ++r->p;
    if ((b = parse_cat(r, depth)) < 0) return -1;
    k = node(r, N_ALT, k, b);
  }
  return k;
}

/* ---- regex: the program */

struct emit { char *buf; size_t len; int err; };

static size_t put1(struct emit *e, int b)
{
  if (e->len >= PROG_MAX) { e->err = 1; return e->len; }
  e->buf[e->len] = (char)b;
  return e->len++;
}
static void put2at(struct emit *e, size_t at, size_t v)
{
  if (at + 1 >= PROG_MAX) { e->err = 1; return; }
  e->buf[at] = (char)(v & 255);
  e->buf[at + 1] = (char)(v >> 8);
}
static size_t split(struct emit *e)  /* SPLIT with both targets to fill; returns its offset */
{
  size_t at = put1(e, OP_SPLIT);
  put1(e, 0); put1(e, 0); put1(e, 0); put1(e, 0);
  return at;
}
static size_t jmp(struct emit *e)
{
  size_t at = put1(e, OP_JMP);
  put1(e, 0); put1(e, 0);
  return at;
}

static void gen(struct re *r, struct emit *e, int k)
{
  struct node *n = &r->n[k];
  size_t a, b, i;
  if (e->err) return;
  switch (n->type) {
    case N_CHAR: put1(e, OP_CHAR); put1(e, n->c); break;
    case N_ANY: put1(e, OP_ANY); break;
    case N_BOL: put1(e, OP_BOL); break;
    case N_EOL: put1(e, OP_EOL); break;
    case N_EMPTY: break;
    case N_CLASS:
      put1(e, OP_CLASS);
      for (i = 0; i < 32; ++i) put1(e, r->cls[n->l][i]);
      break;
    case N_CAT: gen(r, e, n->l); gen(r, e, n->r); break;
    case N_ALT:
      a = split(e);
      put2at(e, a + 1, e->len);
      gen(r, e, n->l);
      b = jmp(e);
      put2at(e, a + 3, e->len);
      gen(r, e, n->r);
      put2at(e, b + 1, e->len);
      break;
    case N_STAR:
      a = split(e);
      put2at(e, a + 1, e->len);
      gen(r, e, n->l);
      b = jmp(e);
      put2at(e, b + 1, a);
      put2at(e, a + 3, e->len);
      break;
    case N_PLUS:
      b = e->len;
      gen(r, e, n->l);
      a = split(e);
      put2at(e, a + 1, b);
      put2at(e, a + 3, e->len);
      break;
    case N_QUEST:
      a = split(e);
      put2at(e, a + 1, e->len);
      gen(r, e, n->l);
      put2at(e, a + 3, e->len);
      break;
    case N_REP: {
      struct node q;
      int j;
      for (j = 0; j < n->min; ++j) gen(r, e, n->l);
      if (n->max < 0) {  /* x{m,} = x...x x* */
        a = split(e);
        put2at(e, a + 1, e->len);
        gen(r, e, n->l);
        b = jmp(e);
        put2at(e, b + 1, a);
        put2at(e, a + 3, e->len);
      } else
        for (j = n->min; j < n->max; ++j) {
          a = split(e);
          put2at(e, a + 1, e->len);
          gen(r, e, n->l);
          put2at(e, a + 3, e->len);
        }
      (void)q;
      break;
    }
  }
}

/* literals - the longest run of plain characters in the top-level sequence */
static void literals(struct re *r, int k, char *run, size_t *rl, char *best, size_t *bl)
{
  struct node *n = &r->n[k];
  if (n->type == N_CAT) {
    literals(r, n->l, run, rl, best, bl);
    literals(r, n->r, run, rl, best, bl);
    return;
  }
  if (n->type == N_CHAR && n->c && *rl < 63) {
    run[(*rl)++] = (char)n->c;
    if (*rl > *bl) { memcpy(best, run, *rl); *bl = *rl; }
    return;
  }
  if (n->type == N_PLUS && r->n[n->l].type == N_CHAR && *rl < 63 && r->n[n->l].c) {
    run[(*rl)++] = (char)r->n[n->l].c;  /* x+ holds one x; the run ends after it */
    if (*rl > *bl) { memcpy(best, run, *rl); *bl = *rl; }
  }
  if (n->type != N_BOL) *rl = 0;
}

int pat_recompile(stralloc *out, const char *pattern, const char **err)
{
  static struct re r;
  static char prog[PROG_MAX];
  struct emit e = {prog, 0, 0};
  char run[64], best[64];
  size_t rl = 0, bl = 0;
  int root;
  if (strlen(pattern) > 1000) { *err = "pattern too long"; return -1; }
  memset(&r, 0, sizeof r);
  r.p = pattern;
  root = parse_alt(&r, 0);
  if (root >= 0 && *r.p) { r.err = "unmatched )"; root = -1; }
  if (root < 0) { *err = r.err ? r.err : "syntax error"; return -1; }
  literals(&r, root, run, &rl, best, &bl);
  gen(&r, &e, root);
  put1(&e, OP_MATCH);
  if (e.err) { *err = "pattern too long"; return -1; }
  if (!stralloc_catb(out, best, bl) || !stralloc_0(out)) { *err = "out of memory"; return -1; }
  {
    char l[2] = {(char)(e.len & 255), (char)(e.len >> 8)};
    if (!stralloc_catb(out, l, 2) || !stralloc_catb(out, prog, e.len)) {
      *err = "out of memory";
      return -1;
    }
  }
  return 0;
}

static size_t get2(const unsigned char *p) { return (size_t)p[0] | (size_t)p[1] << 8; }

size_t pat_relen(const char *prog)
{
  size_t pl = strlen(prog) + 1;
  return pl + 2 + get2((const unsigned char *)prog + pl);
}

/* run - backtracking from one start; 1 match, 0 none, -1 budget spent */
static int run(const unsigned char *code, size_t len, const char *s, size_t start, long *steps)
{
  struct { size_t pc, sp; } st[256];
  int n = 0;
  size_t pc = 0, sp = start;
  for (;;) {
    if (--*steps < 0) return -1;
    if (pc >= len) return 0;
    switch (code[pc]) {
      case OP_CHAR:
        if (s[sp] && (unsigned char)s[sp] == code[pc + 1]) { ++sp; pc += 2; continue; }
        break;
      case OP_ANY:
        if (s[sp]) { ++sp; ++pc; continue; }
        break;
      case OP_CLASS: {
        unsigned char c = (unsigned char)s[sp];
        if (c && (code[pc + 1 + (c >> 3)] & (1 << (c & 7)))) { ++sp; pc += 33; continue; }
        break;
      }
      case OP_BOL:
        if (sp == 0) { ++pc; continue; }
        break;
      case OP_EOL:
        if (!s[sp]) { ++pc; continue; }
        break;
      case OP_JMP: pc = get2(code + pc + 1); continue;
      case OP_SPLIT:
        if (n == (int)(sizeof st / sizeof st[0])) return -1;
        st[n].pc = get2(code + pc + 3);
        st[n++].sp = sp;
        pc = get2(code + pc + 1);
        continue;
      case OP_MATCH: return 1;
      default: return 0;
    }
    if (!n) return 0;
    --n;
    pc = st[n].pc;
    sp = st[n].sp;
  }
}

int pat_rematch(const char *prog, const char *s)
{
  size_t pl = strlen(prog), len, i, slen;
  const unsigned char *code;
  long steps = STEPS_MAX;
  if (pl && !strstr(s, prog)) return 0;
  code = (const unsigned char *)prog + pl + 1;
  len = get2(code);
  code += 2;
  slen = strlen(s);
  for (i = 0; i <= slen; ++i) {
    int r = run(code, len, s, i, &steps);
    if (r) return r;
    if (code[0] == OP_BOL) break;
  }
  return 0;
}

static unsigned tri(const unsigned char *p) { return ((p[0] * 31u + p[1]) * 31u + p[2]) & 4095u; }

void pat_trigrams(const char *s, unsigned char map[PAT_TRI_BYTES])
{
  size_t n = strlen(s), i;
  memset(map, 0, PAT_TRI_BYTES);
  for (i = 0; i + 3 <= n; ++i) {
    unsigned h = tri((const unsigned char *)s + i);
    map[h >> 3] |= (unsigned char)(1 << (h & 7));
  }
}

unsigned pat_trigram(const char *prog)
{
  return prog[0] && prog[1] && prog[2] ? tri((const unsigned char *)prog) + 1 : 0;
}

int pat_rematch_tri(const char *prog, const char *s, const unsigned char map[PAT_TRI_BYTES])
{
  if (prog[0] && prog[1] && prog[2]) {
    unsigned h = tri((const unsigned char *)prog);
    if (!(map[h >> 3] & (1 << (h & 7)))) return 0;
  }
  return pat_rematch(prog, s);
}

/* ---- CIDR */

int pat_cidr_parse(char out[PAT_CIDR_LEN], const char *text)
{
  char a[64];
  const char *slash = strchr(text, '/');
  size_t n = slash ? (size_t)(slash - text) : strlen(text);
  unsigned long bits;
  int fam;
  if (n >= sizeof a) return -1;
  memcpy(a, text, n);
  a[n] = 0;
  memset(out, 0, PAT_CIDR_LEN);
  if (inet_pton(AF_INET, a, out + 2) == 1) fam = 4;
  else if (inet_pton(AF_INET6, a, out + 2) == 1) fam = 6;
  else return -1;
  bits = fam == 4 ? 32 : 128;
  if (slash) {
    const char *p = slash + 1;
    if (!*p) return -1;
    bits = 0;
    while (*p >= '0' && *p <= '9' && bits <= 128) bits = bits * 10 + (unsigned long)(*p++ - '0');
    if (*p || bits > (fam == 4 ? 32UL : 128UL)) return -1;
  }
  out[0] = (char)fam;
  out[1] = (char)bits;
  return 0;
}

int pat_ip_parse(char out[PAT_CIDR_LEN], const char *ip)
{
  if (strchr(ip, '/')) return -1;
  return pat_cidr_parse(out, ip);
}

int pat_cidr_match(const char *cidr, const char *ip)
{
  const unsigned char *a = (const unsigned char *)cidr + 2, *b = (const unsigned char *)ip + 2;
  unsigned bits = (unsigned char)cidr[1], full = bits / 8, rest = bits % 8;
  if (cidr[0] != ip[0]) return 0;
  if (memcmp(a, b, full)) return 0;
  if (rest && ((a[full] ^ b[full]) & (0xff << (8 - rest)) & 0xff)) return 0;
  return 1;
}
