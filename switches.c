/* switches.c - the per-client switches of qmail-ldap (33d8d0d) and sagredo's qmail (302f308),
 * by their names, with the replies and stages their qmail-smtpd.c code has (policy.md A7).
 * Reads the environment once at connect (tcprules or the instruct cdb; one pass over environ):
 * 550GREETING, 421GREETING, SMTP550DISCONNECT, SANITYCHECK, BLOCKRELAYPROBE, NOBOUNCE,
 * SENDERCHECK, LDAPSOFTOK, QMAILLDAP (boolean ones: set, to any value, is on, as qmail-ldap's
 * env_get), QREGEX (a number, non-zero on), LOGREGEX, DISABLE_BADMAILFROM, REJECTNULLSENDERS
 * and BRTLIMIT (numbers, as sagredo's scan_ulong). Control files, each read on first need and
 * absent = off: goodmailfrom, goodmailaddr, badmailfrom-unknown, badrcptto (qmail-ldap: exact
 * address, @domain or user@), badhelo and with QREGEX badmailfrom and badrcptto (sagredo:
 * POSIX extended regexes, case-insensitive, unanchored, a leading ! negates), the *norelay
 * variants (only without RELAYCLIENT), rejectrelaytest, rejectnullsenders, brtlimit. A
 * control file that cannot be read gives 451 (421 where the refusal itself is a 421); a regex
 * that does not compile is logged and never matches (sagredo's behaviour). qmail-ldap refuses
 * bounces with more than one recipient whatever its switches say; stock qmail-smtpd does not,
 * so mxguard does it only when the client's switches were written for qmail-ldap: QMAILLDAP,
 * or any of NOBOUNCE, SANITYCHECK, SENDERCHECK, BLOCKRELAYPROBE, SMTP550DISCONNECT,
 * LDAPSOFTOK is set. DNS lists, through dnsbl.c's channel (dnsbl_extra): RBL with
 * control/rbllist (qmail-ldap, at MAIL; RBLONLYHEADER) and DNSBLLIST or control/dnsbllist
 * (sagredo, at the first RCPT; DNSBLSKIP, RBLSMTPD, DNSBLFAILCLOSED or control/dnsblfailclosed);
 * a lookup that fails passes, as in both patches, unless sagredo's fail-closed is set. With
 * none of these names set and none of these files present, nothing here changes a reply.
 * Names other patches read that mxguard does not implement are in switches_unimplemented[]:
 * one log line per session each, never silently ignored. */
#include <regex.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "control.h"
#include "dnsbl.h"
#include "log.h"
#include "stock.h"
#include "switches.h"
#include "valuser.h"

#define REGEX_MAX 2000      /* patterns compiled per file; the rest are logged and ignored */
#define GREETING_MAX 300    /* bytes of a 550GREETING/421GREETING text */
#define IGNORED_MAX 16      /* unimplemented names remembered for the log */

enum { S_550GREETING, S_421GREETING, S_SMTP550DISCONNECT, S_SANITYCHECK, S_BLOCKRELAYPROBE,
       S_NOBOUNCE, S_SENDERCHECK, S_LDAPSOFTOK, S_QMAILLDAP, S_QREGEX, S_LOGREGEX,
       S_DISABLE_BADMAILFROM, S_REJECTNULLSENDERS, S_BRTLIMIT, S_RBL, S_RBLONLYHEADER,
       S_DNSBLLIST, S_DNSBLSKIP, S_RBLSMTPD, S_DNSBLFAILCLOSED, S_N };
static const char *const names[S_N] = {
  "550GREETING", "421GREETING", "SMTP550DISCONNECT", "SANITYCHECK", "BLOCKRELAYPROBE",
  "NOBOUNCE", "SENDERCHECK", "LDAPSOFTOK", "QMAILLDAP", "QREGEX", "LOGREGEX",
  "DISABLE_BADMAILFROM", "REJECTNULLSENDERS", "BRTLIMIT", "RBL", "RBLONLYHEADER", "DNSBLLIST",
  "DNSBLSKIP", "RBLSMTPD", "DNSBLFAILCLOSED"};
static const char *val[S_N];

const struct switch_known switches_unimplemented[] = {
  {"AUTHORIZED", "qmail-ldap", "the client counts as authenticated"},
  {"NOLOCAL", "qmail-ldap", "locals not accepted as rcpthosts"},
  {"SSLCERT", "qmail-ldap", "path of the TLS certificate (use control/servercert.pem)"},
  {"NOCOMPRESS", "qmail-ldap", "no DATAZ compressed transfer"},
  {"NOPBS", "qmail-ldap", "skip POP-before-SMTP (pbscheck)"},
  {"ALLOW_BARELF", "sagredo", "accept bare LF in DATA"},
  {"SMTPD_GREETDELAY", "sagredo", "greeting delay"},
  {"DROP_PRE_GREET", "sagredo", "drop clients talking before the greeting"},
  {"SPFBEHAVIOR", "sagredo", "SPF checks"},
  {"VALIDRCPTTO", "sagredo", "validrcptto list file"},
  {"MOREVALIDRCPTTO_CDB", "sagredo", "validrcptto cdb"},
  {"VALIDRCPTTO_LOG", "sagredo", "validrcptto log level"},
  {"RCPTCHECKRELAYCLIENT", "sagredo", "external RCPTCHECK program for relay clients"},
  {"CHKUSER_RCPTLIMIT", "chkuser", "recipients per session"},
  {"CHKUSER_MBXQUOTA", "chkuser", "refuse recipients over a mailbox quota percentage"},
  {"CHKUSER_IDENTIFY", "chkuser", "server name in chkuser log lines"},
  {"CHKUSER_DOUBLEBOUNCE", "chkuser", "refuse bounces to a bouncing sender"},
  {"CHKUSER_MUSTAUTH", "chkuser", "senders of local domains must authenticate"},
  {0, 0, 0},
};

static int ignored[IGNORED_MAX], nignored;
static const stralloc *greetme;  /* control/me (else the greeting), for 550GREETING */

/* state read on first need: 0 not yet, else the control_* result (1, 0, -1) */
struct fastre;
struct repat {
  char *line;          /* the line, with its ! */
  const char *lit;     /* text every match holds (lower case, litlen bytes): looked for first */
  size_t litlen;
  int tried;           /* the automaton was tried */
  struct fastre *fast; /* its automaton, or 0: regcomp() on first need */
  int compiled;        /* 0 not yet, 1 re holds it, -1 does not compile */
  regex_t *re;
};
struct relist {
  int state;
  int n;
  struct repat *p;
  const char *fn;
  char *buf, *lits;    /* the lines; their literals */
  stralloc last;       /* the text last asked about (every RCPT asks again) ... */
  const char *lastres; /* ... and the answer */
  int lastok;
};
static struct cmap gmf, gma, bmfu, brt;
static int gmfok, gmaok, bmfuok, brtok;
static struct relist rl_bhelo, rl_bhelonr, rl_bmf, rl_bmfnr, rl_brt, rl_brtnr;
static int relaytest = -1, nullsenders = -1, brtlimit = -1;
static unsigned seen;  /* RCPTs of this transaction past the relay test */
static stralloc txt;

static struct decision q(int code, const char *esc, const char *text, const char *why)
{
  struct decision d = DECISION_NONE;
  d.code = code; d.esc = esc; d.text = text; d.reason = why; d.qmail = 1;
  return d;
}

static struct decision ctlerr(const char *file)
{
  if (log_on(LOG_ERROR)) {
    log_start("error");
    log_str("reason", "control");
    log_str("file", file);
    log_end();
  }
  return q(451, "4.3.0", "unable to read controls", "control");
}

/* ---- the environment */

/* first - the first letters of every name above, fixed at compile time: most variables
 * (PATH, TCP..., HOME) are passed over on this alone, at every connection.
 * switches_selftest() checks that it covers every name. */
static const unsigned char first[256] = {  /* 1: a name of names[], 2: of the other table */
  ['4'] = 1, ['5'] = 1, ['B'] = 1, ['L'] = 1, ['Q'] = 1, ['D'] = 3, ['N'] = 3, ['R'] = 3,
  ['S'] = 3, ['A'] = 2, ['C'] = 2, ['F'] = 2, ['M'] = 2, ['V'] = 2,
};

int switches_selftest(void)
{
  int i;
  for (i = 0; i < S_N; ++i) if (!(first[(unsigned char)names[i][0]] & 1)) return -1;
  for (i = 0; switches_unimplemented[i].name; ++i)
    if (!(first[(unsigned char)switches_unimplemented[i].name[0]] & 2)) return -1;
  return 0;
}

/* is - the variable e (name length l) is name: the second byte first, it differs early */
static int is(const char *e, size_t l, const char *name)
{
  return e[1] == name[1] && !strncmp(e, name, l) && !name[l];
}

/* scan - one pass over env; the first definition of a name wins, as getenv's */
static void scan(char *const *env, int *ign, int *nign)
{
  char *const *e;
  int k;
  for (k = 0; k < S_N; ++k) val[k] = 0;
  *nign = 0;
  for (e = env; e && *e; ++e) {
    const char *v = *e, *eq;
    size_t l;
    unsigned f = first[(unsigned char)v[0]];
    if (!f || !(eq = strchr(v, '='))) continue;
    l = (size_t)(eq - v);
    for (k = 0; f & 1 && k < S_N; ++k)
      if (is(v, l, names[k])) { if (!val[k]) val[k] = eq + 1; break; }
    if ((f & 1 && k < S_N) || !(f & 2)) continue;
    for (k = 0; switches_unimplemented[k].name; ++k)
      if (is(v, l, switches_unimplemented[k].name)) break;
    if (switches_unimplemented[k].name && *nign < IGNORED_MAX) {
      int j;
      for (j = 0; j < *nign && ign[j] != k; ++j) ;
      if (j == *nign) ign[(*nign)++] = k;
    }
  }
}

void switches_init_env(char *const *env) { scan(env, ignored, &nignored); }

void switches_init(const stralloc *me)
{
  extern char **environ;
  int i;
  greetme = me;
  scan(environ, ignored, &nignored);
  if (!log_on(LOG_INFO)) return;
  for (i = 0; i < nignored; ++i) {
    log_start("switch");
    log_str("act", "ignored");
    log_str("name", switches_unimplemented[ignored[i]].name);
    log_str("from", switches_unimplemented[ignored[i]].origin);
    log_clients("why", "not implemented");
    log_end();
  }
}

int switches_ignored(char *const *env, void (*fn)(const struct switch_known *k, void *ctx),
                     void *ctx)
{
  int ign[IGNORED_MAX], n, i;
  const char *keep[S_N];
  memcpy(keep, val, sizeof keep);
  scan(env, ign, &n);
  memcpy(val, keep, sizeof keep);
  for (i = 0; i < n; ++i) fn(&switches_unimplemented[ign[i]], ctx);
  return n;
}

/* number - sagredo's scan_ulong of a value: the leading digits, 0 when none */
static unsigned long number(const char *x)
{
  return control_scanulong(x, 0);
}

static int ldapmode(void)
{
  return (val[S_QMAILLDAP] && strcmp(val[S_QMAILLDAP], "0")) || val[S_NOBOUNCE] ||
         val[S_SANITYCHECK] || val[S_SENDERCHECK] || val[S_BLOCKRELAYPROBE] ||
         val[S_SMTP550DISCONNECT] || val[S_LDAPSOFTOK];
}

static int qregex(void) { return val[S_QREGEX] && number(val[S_QREGEX]) != 0; }

/* printable - bytes outside 32..126 become '?': reply lines and header lines are made of
 * control files and DNS answers too */
static void printable(char *x, size_t len)
{
  size_t i;
  for (i = 0; i < len; ++i)
    if ((unsigned char)x[i] < 32 || (unsigned char)x[i] > 126) x[i] = '?';
}

/* ---- the greeting */

int switches_greeting(struct decision *d, const stralloc *me)
{
  const char *g = val[S_550GREETING] ? val[S_550GREETING] : val[S_421GREETING];
  size_t n;
  if (!g) return 0;
  if (!*g)
    g = val[S_550GREETING] ? "Sorry, your mail was administratively denied. (#5.7.1)"
                           : "Service temporarily not available (#4.3.2)";
  if (!stralloc_copy(&txt, me) || !stralloc_cats(&txt, " ") || !(n = txt.len) ||
      !stralloc_cats(&txt, g) || !stralloc_ready(&txt, txt.len + 1)) {
    *d = q(421, "4.3.0", "out of memory", "nomem");  /* never the banner instead */
    d->drop = 1;
    return 1;
  }
  if (txt.len > n + GREETING_MAX) txt.len = n + GREETING_MAX;
  printable(txt.s + n, txt.len - n);
  txt.s[txt.len] = 0;
  *d = q(val[S_550GREETING] ? 554 : 421, 0, txt.s,
         val[S_550GREETING] ? "greeting550" : "greeting421");
  d->drop = val[S_SMTP550DISCONNECT] != 0;
  return 1;
}

struct decision switches_greetcheck(struct session *s)
{
  struct decision d;
  (void)s;
  return greetme && switches_greeting(&d, greetme) ? d : DECISION_NONE;
}

int switches_restricts(const struct decision *d)
{
  return d->reason && (!strcmp(d->reason, "greeting550") || !strcmp(d->reason, "greeting421"));
}

struct decision switches_restricted(const char *verb)
{
  if (val[S_421GREETING] && (!strcasecmp(verb, "helo") || !strcasecmp(verb, "ehlo")))
    return q(421, "4.3.2", "Service temporarily not available", "greeting421");
  return q(503, "5.5.1", "bad sequence of commands", "greeting");
}

int switches_disconnect(void) { return val[S_SMTP550DISCONNECT] != 0; }

/* ---- lists */

static const char *lastat(const char *a, size_t len)
{
  while (len--) if (a[len] == '@') return a + len;
  return 0;
}

/* addrmap - qmail-ldap's constmap lookups: the address, "@domain", "user@"; 1, 0, -1 */
static int addrmap(struct cmap *m, const char *a, size_t len)
{
  const char *at;
  int r;
  if ((r = cmap_has(m, a, len))) return r;
  if (!(at = lastat(a, len))) return 0;
  if ((r = cmap_has(m, at, len - (size_t)(at - a)))) return r;
  return cmap_has(m, a, (size_t)(at - a) + 1);
}

static int loadmap(struct cmap *m, int *ok, const char *fn)
{
  if (!*ok) *ok = cmap_load(m, fn) == -1 ? -1 : 2 + (m->sa.len != 0);
  return *ok == -1 ? -1 : *ok == 3;
}

/* goodfrom - the sender is in control/goodmailfrom: 1, 0, -1 unreadable */
static int goodfrom(const char *a, size_t len)
{
  int r = loadmap(&gmf, &gmfok, "control/goodmailfrom");
  return r == 1 ? addrmap(&gmf, a, len) : r;
}

/* goodaddr - control/goodmailaddr, with qmail-ldap's catchall forms: 1, 0, -1 */
static int goodaddr(const char *a, size_t len)
{
  static stralloc c;
  const char *at;
  size_t i;
  int r = loadmap(&gma, &gmaok, "control/goodmailaddr");
  if (r != 1) return r;
  if ((r = addrmap(&gma, a, len)) || !(at = lastat(a, len))) return r;
  for (i = (size_t)(at - a); i-- > 0;)  /* foo-catchall@domain, longest prefix first */
    if (a[i] == '-') {
      if (!stralloc_copyb(&c, a, i + 1) || !stralloc_cats(&c, "catchall") ||
          !stralloc_catb(&c, at, len - (size_t)(at - a)))
        return -1;
      if ((r = cmap_has(&gma, c.s, c.len))) return r;
    }
  if (!stralloc_copys(&c, "catchall") || !stralloc_catb(&c, at, len - (size_t)(at - a))) return -1;
  return cmap_has(&gma, c.s, c.len);
}

static void logregex(const char *file, const char *pat, const char *what)
{
  if (!log_on(LOG_ERROR)) return;
  log_start("error");
  log_str("reason", "regex");
  log_str("file", file);
  log_clients("pattern", pat);
  log_clients("what", what);
  log_end();
}

/* Most qregex lines use only literal text, ., bracket classes, the quantifiers * + ?, and ^
 * or $ at the ends (sagredo's own examples, and every classic qmail badmailfrom line read as a
 * regex): those are matched here by a small automaton with the same meaning
 * (case-insensitive, unanchored, leftmost-any-match), in time proportional to text x pattern
 * whatever the pattern. Only the others go to regcomp(), on first need: glibc's regcomp costs
 * some 30 000 instructions a pattern, 8 million for 250 lines, in every session. */
#define FAST_MAX 128  /* atoms of a fast pattern */

enum { A_LIT, A_ANY, A_SET };
struct atom {
  unsigned char kind, c;  /* A_LIT: the byte, lower case */
  char q;                 /* 1, '?', '*', '+' */
  unsigned char *set;     /* A_SET: the bytes it matches (a bracket expression) */
};
struct fastre {
  int n, bol, eol;        /* atoms; anchored at ^, at $ */
  struct atom a[1];       /* n of them */
};

static unsigned char lowb(unsigned char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }
static unsigned char upb(unsigned char c) { return c >= 'a' && c <= 'z' ? c - 32 : c; }
static void setadd(unsigned char *set, unsigned c)
{
  set[c / 8] |= (unsigned char)(1u << (c % 8));
  set[lowb((unsigned char)c) / 8] |= (unsigned char)(1u << (lowb((unsigned char)c) % 8));
  set[upb((unsigned char)c) / 8] |= (unsigned char)(1u << (upb((unsigned char)c) % 8));
}
static int setin(const unsigned char *set, unsigned char c) { return set[c / 8] >> (c % 8) & 1; }

/* bracket - a POSIX bracket expression at p (after the '['): the set; the byte after ']',
 * or 0 for what is left to regcomp (classes like [:digit:], collating elements) */
static const char *bracket(const char *p, unsigned char *set)
{
  int neg = *p == '^', lead = 1, i;
  if (neg) ++p;
  for (; *p && (lead || *p != ']'); lead = 0) {
    unsigned lo = (unsigned char)*p++, hi = lo, c;
    if (lo == '[' && (*p == ':' || *p == '.' || *p == '=')) return 0;
    if (*p == '-' && p[1] && p[1] != ']') {
      hi = (unsigned char)p[1];
      if (hi == '[' || hi < lo) return 0;
      p += 2;
    }
    for (c = lo; c <= hi; ++c) setadd(set, c);
  }
  if (*p != ']') return 0;
  if (neg) for (i = 0; i < 32; ++i) set[i] = (unsigned char)~set[i];
  set[0] &= 0xfe;  /* never NUL */
  return p + 1;
}

/* fastre_free - the bracket sets of f, and f itself when it was malloc()ed alone */
static void fastre_free(struct fastre *f, int self)
{
  int i;
  if (!f) return;
  for (i = 0; i < f->n; ++i) free(f->a[i].set);
  f->n = 0;
  if (self) free(f);
}

/* bytes with a meaning outside brackets, and those a backslash makes plain (GNU regex gives
 * others after a backslash, like \w or \1, a meaning: those go to regcomp) */
static const unsigned char meta[256] = {
  ['('] = 1, [')'] = 1, ['*'] = 1, ['+'] = 1, ['?'] = 1, ['{'] = 1, ['}'] = 1, ['|'] = 1,
  ['^'] = 1, ['$'] = 1, ['\\'] = 1,
};
static const unsigned char plain_esc[256] = {
  ['.'] = 1, ['['] = 1, [']'] = 1, ['('] = 1, [')'] = 1, ['*'] = 1, ['+'] = 1, ['?'] = 1,
  ['{'] = 1, ['}'] = 1, ['|'] = 1, ['^'] = 1, ['$'] = 1, ['\\'] = 1, ['/'] = 1, ['-'] = 1,
  ['@'] = 1, ['_'] = 1,
};
static int quantifier(char c) { return c == '*' || c == '+' || c == '?'; }

static size_t fastre_size(size_t len) { return sizeof(struct fastre) + len * sizeof(struct atom); }

/* fastre_build - p as atoms into f (fastre_size(strlen(p)) bytes): 1, or 0 when it needs
 * regcomp (or memory is short: same) */
static int fastre_build(struct fastre *f, const char *p)
{
  f->n = f->bol = f->eol = 0;
  if (strlen(p) > FAST_MAX) return 0;
  if (*p == '^') { f->bol = 1; ++p; }
  while (*p) {
    struct atom *a = &f->a[f->n];
    unsigned char c = (unsigned char)*p;
    a->kind = A_LIT;
    a->set = 0;
    if (c == '$' && !p[1]) { f->eol = 1; break; }
    if (c == '[') {
      const char *e;
      if (!(a->set = calloc(1, 32)) || !(e = bracket(p + 1, a->set))) {
        free(a->set);
        a->set = 0;
        break;
      }
      a->kind = A_SET;
      p = e;
    } else if (c == '.') { a->kind = A_ANY; ++p; }
    else if (c == '\\' && plain_esc[(unsigned char)p[1]] && p[1]) { a->c = lowb((unsigned char)p[1]); p += 2; }
    else if (c < 32 || meta[c]) break;
    else { a->c = lowb(c); ++p; }
    a->q = 1;
    ++f->n;
    if (quantifier(*p)) a->q = *p++;
    if (quantifier(*p) || *p == '{') break;
  }
  if (*p && !(f->eol && p[0] == '$' && !p[1])) { fastre_free(f, 0); return 0; }
  return 1;
}

static int amatch(const struct atom *a, unsigned char c)
{
  return a->kind == A_LIT ? lowb(c) == a->c : a->kind == A_ANY || setin(a->set, c);
}

/* closure - add the positions reachable from i without a byte (atoms that may be absent) */
static void closure(const struct fastre *f, unsigned char *st, int i)
{
  for (; i < f->n && !st[i]; ++i) {
    st[i] = 1;
    if (f->a[i].q != '?' && f->a[i].q != '*') return;
  }
  if (i == f->n) st[i] = 1;
}

/* contains - text holds lit (lower case, len bytes), case-insensitively */
static int contains(const char *t, const char *lit, size_t len)
{
  for (; *t; ++t) {
    size_t k;
    for (k = 0; k < len && t[k] && lowb((unsigned char)t[k]) == (unsigned char)lit[k]; ++k) ;
    if (k == len) return 1;
  }
  return !len;
}

/* fastre_match - the pattern matches somewhere in text (or as anchored): the states of the
 * automaton are the atoms still to match, all followed at once */
static int fastre_match(const struct fastre *f, const char *t)
{
  unsigned char cur[FAST_MAX + 1], nxt[FAST_MAX + 1];
  int i, n = f->n;
  memset(cur, 0, (size_t)n + 1);
  closure(f, cur, 0);
  for (;; ++t) {
    if (cur[n] && (!f->eol || !*t)) return 1;
    if (!*t) return 0;
    memset(nxt, 0, (size_t)n + 1);
    for (i = 0; i < n; ++i) {
      if (!cur[i] || !amatch(&f->a[i], (unsigned char)*t)) continue;
      if (f->a[i].q == '*' || f->a[i].q == '+') closure(f, nxt, i);
      closure(f, nxt, i + 1);
      if (f->a[i].q == '*' || f->a[i].q == '+') nxt[i] = 1;
    }
    if (!f->bol) closure(f, nxt, 0);  /* unanchored: a match may start at every byte */
    memcpy(cur, nxt, (size_t)n + 1);
  }
}

/* skipbracket - past the bracket expression at p (after its '['), or 0 */
static const char *skipbracket(const char *p)
{
  if (*p == '^') ++p;
  if (*p == ']') ++p;
  while (*p && *p != ']') {
    if (*p == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
      const char *x = p + 2;
      while (*x && !(x[0] == p[1] && x[1] == ']')) ++x;
      if (!*x) return 0;
      p = x + 2;
    } else ++p;
  }
  return *p ? p + 1 : 0;
}

/* what a byte is to rawlit(): plain text unless listed */
enum { R_PLAIN, R_ALT, R_ESC, R_BRACKET, R_INTERVAL, R_OTHER };
static const unsigned char rclass[256] = {
  [0] = R_OTHER, [1 ... 31] = R_OTHER, ['|'] = R_ALT, ['('] = R_ALT, ['\\'] = R_ESC,
  ['['] = R_BRACKET, ['{'] = R_INTERVAL, ['.'] = R_OTHER, [')'] = R_OTHER, ['*'] = R_OTHER,
  ['+'] = R_OTHER, ['?'] = R_OTHER, ['}'] = R_OTHER, ['^'] = R_OTHER, ['$'] = R_OTHER,
};
static const unsigned char repeats[256] = {['*'] = 1, ['+'] = 1, ['?'] = 1, ['{'] = 1};

/* rawlit - the longest run of plain bytes that every match of pattern p must hold, in lower
 * case at out + *off (out has strlen(p) bytes): atoms in sequence that are not followed by a
 * quantifier. With | or ( nothing is certain: 0. Its length. */
static size_t rawlit(const char *p, char *out, size_t *off)
{
  size_t w = 0, start = 0, best = 0;  /* the runs are written one after another into out */
  *off = 0;
  if (*p == '^') ++p;
  for (;;) {
    unsigned char c = (unsigned char)*p, k = rclass[c];
    if (k == R_PLAIN && !repeats[(unsigned char)p[1]]) { out[w++] = (char)lowb(c); ++p; continue; }
    if (k == R_ESC && p[1] && plain_esc[(unsigned char)p[1]] && !repeats[(unsigned char)p[2]]) {
      out[w++] = (char)lowb((unsigned char)p[1]);
      p += 2;
      continue;
    }
    if (w - start > best) { best = w - start; *off = start; }
    start = w;
    switch (k) {
      case R_ALT: return 0;
      case R_BRACKET: if (!(p = skipbracket(p + 1))) return 0; break;
      case R_INTERVAL: if (!(p = strchr(p, '}'))) return best; ++p; break;  /* its counts */
      case R_ESC: p += p[1] ? 2 : 1; break;
      default: if (!c) return best; ++p;
    }
  }
}

/* relist_init - the lines (NUL-terminated, len bytes) of file fn into l: the lines and their
 * literals in two blocks; automata are made when a line is first reached; 1, or -1 */
static int relist_init(struct relist *l, const char *lines, size_t len, const char *fn)
{
  size_t i, n = 0;
  for (i = 0; i < len && n < REGEX_MAX; i += strlen(lines + i) + 1) ++n;
  if (i < len) logregex(fn, "", "too many patterns: the rest are ignored");
  l->fn = fn;
  l->n = 0;
  if (!(l->p = calloc(n + 1, sizeof *l->p)) || !(l->buf = malloc(i + 1)) ||
      !(l->lits = malloc(i + 1)))
    return -1;
  memcpy(l->buf, lines, i);
  for (i = 0; l->n < (int)n; i += strlen(l->buf + i) + 1) {
    struct repat *r = &l->p[l->n++];
    r->line = l->buf + i;
    if (r->line[0] != '!') {  /* see relist_match */
      size_t off;
      r->litlen = rawlit(r->line, l->lits + i, &off);
      r->lit = l->lits + i + off;
    }
  }
  return 1;
}

/* relist_load - the patterns of fn, read once; 1 present, 0 absent or empty, -1 error */
static int relist_load(struct relist *l, const char *fn)
{
  static stralloc sa;
  const stralloc *bmf;
  int r;
  if (l->state) return l->state == 2 ? 0 : l->state;
  if (!strcmp(fn, "control/badmailfrom") && (bmf = stock_badmailfrom_lines()))  /* read at init */
    return l->state = relist_init(l, bmf->s, bmf->len, fn);
  r = control_readfile(&sa, fn);
  if (r != 1) { l->state = r ? -1 : 2; return r; }
  return l->state = relist_init(l, sa.s, sa.len, fn);
}

/* rematch - does pattern r match text: 1, 0. Its automaton is made, or it is compiled, when
 * the text holds its literal; a pattern that does not compile never matches (sagredo's
 * behaviour) and is logged once */
static int rematch(const struct relist *l, struct repat *r, const char *text)
{
  const char *p = r->line + (r->line[0] == '!');
  if (r->litlen && !contains(text, r->lit, r->litlen)) return 0;
  if (!r->tried) {
    size_t len = strlen(p);
    struct fastre *f = len <= FAST_MAX ? malloc(fastre_size(len)) : 0;
    r->tried = 1;
    if (f && fastre_build(f, p)) r->fast = f;
    else fastre_free(f, 1);
  }
  if (r->fast) return fastre_match(r->fast, text);
  if (!r->compiled) {
    int e = (r->re = malloc(sizeof *r->re)) ? regcomp(r->re, p, REG_EXTENDED | REG_ICASE | REG_NOSUB)
                                            : REG_ESPACE;
    r->compiled = e ? -1 : 1;
    if (e) {
      char errbuf[128];
      if (r->re) regerror(e, r->re, errbuf, sizeof errbuf);
      else strcpy(errbuf, "out of memory");
      logregex(l->fn ? l->fn : "", r->line, errbuf);
    }
  }
  return r->compiled == 1 && regexec(r->re, text, 0, 0, 0) == 0;
}

/* relist_match - sagredo's bmcheck: the first line that matches (or, with !, does not); a
 * line that does not compile decides nothing (so a ! line is always made or compiled: the
 * literal shortcut is for the others only) */
static const char *relist_match(const struct relist *l, const char *text)
{
  int i;
  for (i = 0; i < l->n; ++i) {
    struct repat *r = &l->p[i];
    int m = rematch(l, r, text);
    if (r->compiled == -1) continue;
    if (m != (r->line[0] == '!')) return r->line;
  }
  return 0;
}

/* relist_cached - relist_match, remembering the last text */
static const char *relist_cached(struct relist *l, const char *text)
{
  if (l->lastok && !strcmp(l->last.s, text)) return l->lastres;
  l->lastres = relist_match(l, text);
  l->lastok = stralloc_copys(&l->last, text) && stralloc_0(&l->last);
  return l->lastres;
}

int switches_regex_test(const char *lines, size_t len, const char *text, const char **which)
{
  static struct relist l;  /* kept: *which points into it until the next call */
  int i;
  for (i = 0; i < l.n; ++i) {
    if (l.p[i].compiled == 1) regfree(l.p[i].re);
    free(l.p[i].re);
    fastre_free(l.p[i].fast, 1);
  }
  free(l.p);
  free(l.buf);
  free(l.lits);
  memset(&l, 0, sizeof l);
  if (relist_init(&l, lines, len, 0) == -1) return -1;
  *which = relist_match(&l, text);
  return *which != 0;
}

/* switches_regex_fast - the line has the fast form (tests) */
int switches_regex_fast(const char *line)
{
  struct fastre *f = malloc(fastre_size(strlen(line)));
  int r = f && fastre_build(f, line + (*line == '!'));
  fastre_free(f, 1);
  return r;
}

/* regexes - text against file fn (and fnnr without RELAYCLIENT): 1 match, 0, -1 error
 * (*file says which) */
static int regexes(struct session *s, struct relist *l, const char *fn, struct relist *lnr,
                   const char *fnnr, const char *text, const char **file)
{
  const char *p = 0;
  int r = relist_load(l, fn);
  if (r == -1) return *file = fn, -1;
  if (r == 1) p = relist_cached(l, text);
  if (!p && !s->relayclient) {
    if ((r = relist_load(lnr, fnnr)) == -1) return *file = fnnr, -1;
    if (r == 1 && (p = relist_cached(lnr, text))) fn = fnnr;
  }
  if (p && val[S_LOGREGEX] && log_on(LOG_INFO)) {  /* sagredo's LOGREGEX: which pattern */
    log_start("qregex");
    log_str("file", fn);
    log_clients("pattern", p);
    log_clients("text", text);
    log_end();
  }
  return p != 0;
}

/* ctlnum - env value x, else the number in control file fn (cached in *v); -1 unreadable */
static int ctlnum(const char *x, const char *fn, int *v)
{
  if (*v >= 0) return 0;
  if (x) { unsigned long u = number(x); *v = u > 1000000 ? 1000000 : (int)u; return 0; }
  *v = 0;
  if (control_readint(v, fn) == -1) { *v = -1; return -1; }
  if (*v < 0) *v = 0;
  return 0;
}

static int bounce(const char *a, size_t len) { return !len || (len == 4 && !memcmp(a, "#@[]", 4)); }

/* ---- MAIL */

/* unlessgood - the refusal d, unless the sender is in goodmailfrom */
static struct decision unlessgood(const char *a, size_t len, struct decision d)
{
  int r = goodfrom(a, len);
  if (r == -1) return ctlerr("control/goodmailfrom");
  return r ? DECISION_NONE : d;
}

struct decision switches_txn(struct session *s)
{
  (void)s;
  seen = 0;
  return DECISION_NONE;
}

struct decision switches_nullsenders(struct session *s)
{
  struct decision d;
  if (s->rcpt.len) return DECISION_NONE;
  if (ctlnum(val[S_REJECTNULLSENDERS], "control/rejectnullsenders", &nullsenders) == -1) {
    d = ctlerr("control/rejectnullsenders");
    d.code = 421;
    d.drop = 1;
    return d;
  }
  if (!nullsenders) return DECISION_NONE;
  d = q(421, "4.3.0", "null senders temporarily denied", "rejectnullsenders");
  d.drop = 1;
  return d;
}

struct decision switches_bmfunknown(struct session *s)
{
  int r;
  if (strcasecmp(s->remotehost, "unknown")) return DECISION_NONE;
  if ((r = loadmap(&bmfu, &bmfuok, "control/badmailfrom-unknown")) == -1)
    return ctlerr("control/badmailfrom-unknown");
  if (!r || !(r = addrmap(&bmfu, s->rcpt.s, s->rcpt.len))) return DECISION_NONE;
  if (r == -1) return q(451, "4.3.0", "out of memory", "nomem");
  if (!stralloc_copys(&txt, "sorry, your mail from a host [") || !stralloc_cats(&txt, s->remoteip) ||
      !stralloc_cats(&txt, "] without valid reverse DNS was administratively denied") ||
      !stralloc_0(&txt))
    return q(451, "4.3.0", "out of memory", "nomem");
  return unlessgood(s->rcpt.s, s->rcpt.len, q(553, "5.7.1", txt.s, "badmailfrom-unknown"));
}

struct decision switches_nobounce(struct session *s)
{
  if (!val[S_NOBOUNCE] || !bounce(s->rcpt.s, s->rcpt.len)) return DECISION_NONE;
  return q(554, 0, "RFC2821 bounces are administratively denied", "nobounce");
}

struct decision switches_sanity(struct session *s)
{
  const char *a = s->rcpt.s, *at, *why = 0;
  size_t len = s->rcpt.len;
  if (!val[S_SANITYCHECK] || bounce(a, len)) return DECISION_NONE;
  if (!(at = lastat(a, len))) why = "mailfrom without @ is administratively denied";
  else if (at == a || at + 1 == a + len)
    why = "mailfrom without user or domain part is administratively denied";
  else if (!memchr(at, '.', len - (size_t)(at - a)))
    why = "mailfrom without . in domain part is administratively denied";
  if (!why) return DECISION_NONE;
  return unlessgood(a, len, q(554, 0, why, "sanitycheck"));
}

struct decision switches_returnmx(struct session *s)
{
  struct decision d = dnsbl_returnmx(s);
  if (!d.code) return d;
  return unlessgood(s->rcpt.s, s->rcpt.len, d);
}

/* sendernotlocal - SENDERCHECK for a sender whose domain is not ours */
static struct decision sendernotlocal(struct session *s, const char *mode)
{
  struct decision d = q(554, 0, "refused mailfrom because valid local sender address required",
                        "sendercheck");
  if (!strcasecmp(mode, "STRICT")) return d;
  if (strcasecmp(mode, "LOOSE")) return DECISION_NONE;
  {
    struct session t = *s;  /* LOOSE: the sender's domain must be in rcpthosts */
    struct decision r;
    t.relayclient = 0;
    r = stock_rcpthosts(&t);
    if (r.code && r.code != 553) return r;
    return r.code ? d : DECISION_NONE;
  }
}

struct decision switches_sendercheck(struct session *s)
{
  const char *a = s->rcpt.s, *mode = val[S_SENDERCHECK];
  size_t len = s->rcpt.len;
  struct vu_result vr;
  int r;
  if (!mode || bounce(a, len)) return DECISION_NONE;
  if ((r = goodfrom(a, len)) == -1) return ctlerr("control/goodmailfrom");
  if (r) return DECISION_NONE;
  if ((r = goodaddr(a, len)) == -1) return ctlerr("control/goodmailaddr");
  if (r) return DECISION_NONE;
  valuser_lookup(a, len, &vr);
  switch (vr.r) {
    case VU_YES: return DECISION_NONE;
    case VU_NO: return q(554, "5.1.1", "Sorry, no mailbox here by that name.", "sendercheck");
    case VU_TEMP:
      if (val[S_LDAPSOFTOK]) return DECISION_NONE;
      if (log_on(LOG_ERROR)) {
        log_start("error");
        log_str("reason", "sendercheck");
        log_str("backend", vr.backend ? vr.backend : "unknown");
        log_str("why", vr.why ? vr.why : "unknown");
        if (vr.detail) log_clients("detail", vr.detail);
        log_end();
      }
      return q(451, "4.3.0", "temporary failure verifying the sender address", "sendercheck_temp");
  }
  if (vr.why && !strcmp(vr.why, "notlocal")) return sendernotlocal(s, mode);
  return DECISION_NONE;  /* local, but nothing can tell (no user database): as qmail-ldap's */
}

/* ---- RCPT */

int switches_relayprobe_test(const char *a, size_t len)
{
  const char *at = lastat(a, len);
  size_t j = at ? (size_t)(at - a) : len;
  while (j-- > 0)
    if (a[j] == '@' || a[j] == '%' || a[j] == '!') return 1;
  return 0;
}

struct decision switches_relayprobe(struct session *s)
{
  if (!val[S_BLOCKRELAYPROBE]) {
    if (relaytest < 0 && ctlnum(0, "control/rejectrelaytest", &relaytest) == -1)
      return ctlerr("control/rejectrelaytest");
    if (!relaytest) return DECISION_NONE;
  }
  if (!switches_relayprobe_test(s->rcpt.s, s->rcpt.len)) return DECISION_NONE;
  if (!val[S_BLOCKRELAYPROBE]) return q(553, "5.7.1", "we don't relay", "rejectrelaytest");
  if (!stralloc_copys(&txt, "sorry, we don't relay for [") || !stralloc_cats(&txt, s->remoteip) ||
      !stralloc_cats(&txt, "]") || !stralloc_0(&txt))
    return q(451, "4.3.0", "out of memory", "nomem");
  return q(553, "5.7.1", txt.s, "blockrelayprobe");
}

struct decision switches_badhelo(struct session *s)
{
  const char *file;
  int r;
  if (!s->helo.len) return DECISION_NONE;  /* no HELO said: nothing to check */
  r = regexes(s, &rl_bhelo, "control/badhelo", &rl_bhelonr, "control/badhelonorelay", s->helo.s,
              &file);
  if (r == -1) return ctlerr(file);
  return r ? q(553, "5.7.1", "sorry, your HELO host name has been denied", "badhelo")
           : DECISION_NONE;
}

struct decision switches_badmailfrom(struct session *s)
{
  struct decision d;
  const char *file;
  int r;
  if (val[S_DISABLE_BADMAILFROM]) return DECISION_NONE;
  if (!qregex()) {
    d = stock_badmailfrom(s);
    return d.code == 553 ? unlessgood(s->mailfrom.s, s->mailfrom.len, d) : d;
  }
  if (!s->mailfrom.len) return DECISION_NONE;  /* sagredo: the null sender is never checked */
  r = regexes(s, &rl_bmf, "control/badmailfrom", &rl_bmfnr, "control/badmailfromnorelay",
              s->mailfrom.s, &file);
  if (r == -1) return ctlerr(file);
  if (!r) return DECISION_NONE;
  return unlessgood(s->mailfrom.s, s->mailfrom.len,
                    q(553, "5.7.1", "sorry, your envelope sender has been denied", "badmailfrom"));
}

struct decision switches_brtlimit(struct session *s)
{
  struct decision d;
  if (brtlimit < 0 && ctlnum(val[S_BRTLIMIT], "control/brtlimit", &brtlimit) == -1) {
    brtlimit = -1;
    return ctlerr("control/brtlimit");
  }
  if (!brtlimit || s->rcpt_bad < (unsigned long)brtlimit) return DECISION_NONE;
  d = q(421, "4.3.0", "too many invalid addresses, goodbye", "brtlimit");
  d.drop = 1;
  return d;
}

struct decision switches_badrcptto(struct session *s)
{
  const char *file;
  int r;
  if (qregex()) {
    r = regexes(s, &rl_brt, "control/badrcptto", &rl_brtnr, "control/badrcpttonorelay", s->rcpt.s,
                &file);
    if (r == -1) return ctlerr(file);
    return r ? q(553, "5.7.1", "sorry, your envelope recipient has been denied", "badrcptto")
             : DECISION_NONE;
  }
  if ((r = loadmap(&brt, &brtok, "control/badrcptto")) == -1) return ctlerr("control/badrcptto");
  if (r) r = addrmap(&brt, s->rcpt.s, s->rcpt.len);
  if (r == -1) return q(451, "4.3.0", "out of memory", "nomem");
  return r ? q(553, "5.7.1", "sorry, mail to that recipient is not accepted", "badrcptto")
           : DECISION_NONE;
}

struct decision switches_badbounce(struct session *s)
{
  if (++seen < 2 || !bounce(s->mailfrom.s, s->mailfrom.len) || !ldapmode()) return DECISION_NONE;
  return q(550, "5.7.1",
           "sorry, I don't accept bounce messages with more than one recipient. Go read RFC2821.",
           "badbounce");
}

struct decision switches_valuser(struct session *s)
{
  int r = goodaddr(s->rcpt.s, s->rcpt.len);
  if (r == -1) return ctlerr("control/goodmailaddr");
  return r ? DECISION_NONE : valuser_check(s);
}

/* ---- DNS lists: qmail-ldap's RBL (control/rbllist, at MAIL) and sagredo's DNSBLLIST
 * (control/dnsbllist, at the first RCPT), through dnsbl.c's channel */

#define LISTS_MAX 32  /* lines of rbllist/dnsbllist used (of DNSBL_EXTRA_MAX answers); the rest are logged */

struct rblline { const char *base, *action, *matchon, *message; int idx; };
static struct rblline rbls[LISTS_MAX];
static int nrbl, rblstate;  /* rblstate: 0 not read, 1 read and asked, -1 broken */
static stralloc rbldata, rblhdr;

static void loglists(const char *file, const char *what, const char *line)
{
  if (!log_on(LOG_ERROR)) return;
  log_start("error");
  log_str("reason", "control");
  log_str("file", file);
  log_str("what", what);
  if (line) log_clients("line", line);
  log_end();
}

/* rbl_parse - "basedomain action matchon message...", blanks between; -1 on a short line */
static int rbl_parse(char *l, struct rblline *r)
{
  const char **f[3];
  int k;
  f[0] = &r->base; f[1] = &r->action; f[2] = &r->matchon;
  for (k = 0; k < 3; ++k) {
    while (*l == ' ' || *l == '\t') ++l;
    if (!*l) return -1;
    *f[k] = l;
    while (*l && *l != ' ' && *l != '\t') ++l;
    if (!*l) return -1;
    *l++ = 0;
  }
  while (*l == ' ' || *l == '\t') ++l;
  r->message = l;
  return 0;
}

/* rbl_ask - read control/rbllist and send every line's A query: 1, 0 nothing to ask, -1 */
static int rbl_ask(const char *ip)
{
  size_t i, next;
  int r;
  if (rblstate) return rblstate;
  r = control_readfile(&rbldata, "control/rbllist");
  if (r == -1) return rblstate = -1;
  for (i = 0; r == 1 && i < rbldata.len; i = next) {
    char name[300];
    struct rblline *l = &rbls[nrbl];
    char *line = rbldata.s + i;
    next = i + strlen(line) + 1;  /* before rbl_parse cuts the line */
    if (nrbl == LISTS_MAX) { loglists("control/rbllist", "too many lines: the rest are ignored", 0); break; }
    if (rbl_parse(line, l) == -1) {
      loglists("control/rbllist", "parse error", line);
      return rblstate = -1;  /* qmail-ldap: die_control */
    }
    l->idx = dnsbl_revname(name, sizeof name, ip, l->base) > 0 ? dnsbl_extra(name, 0) : -1;
    ++nrbl;
  }
  return rblstate = 1;
}

/* rbl_match - a listing counts: matchon "any", or one of the A records is it */
static int rbl_match(const struct dnsbl_answer *a, const char *matchon)
{
  int j;
  if (!strcmp(matchon, "any")) return 1;
  for (j = 0; j < a->n; ++j) {
    char ip[INET_ADDRSTRLEN];
    if (inet_ntop(AF_INET, a->a[j], ip, sizeof ip) && !strcmp(ip, matchon)) return 1;
  }
  return 0;
}

static int rbl_header(const struct rblline *l)
{
  size_t start = rblhdr.len;
  if (!stralloc_cats(&rblhdr, "X-RBL: (") || !stralloc_cats(&rblhdr, l->base) ||
      !stralloc_cats(&rblhdr, ") ") ||
      (strcmp(l->matchon, "any") && (!stralloc_cats(&rblhdr, "matches with ") ||
                                      !stralloc_cats(&rblhdr, l->matchon) ||
                                      !stralloc_cats(&rblhdr, " and "))) ||
      !stralloc_cats(&rblhdr, "tells us ") || !stralloc_cats(&rblhdr, l->message))
    return 0;
  printable(rblhdr.s + start, rblhdr.len - start);
  return stralloc_cats(&rblhdr, "\n");
}

struct decision switches_rbl(struct session *s)
{
  const struct dnsbl_answer *a;
  unsigned char ip4[4];
  struct decision d;
  int i, r;
  rblhdr.len = 0;
  if (!val[S_RBL] || s->relayclient || inet_pton(AF_INET, s->remoteip, ip4) != 1)
    return DECISION_NONE;  /* qmail-ldap: IPv4 clients only */
  if ((r = goodfrom(s->rcpt.s, s->rcpt.len)) == -1) return ctlerr("control/goodmailfrom");
  if (r) return DECISION_NONE;
  if (rbl_ask(s->remoteip) == -1) {
    d = ctlerr("control/rbllist");
    d.code = 421;
    d.drop = 1;
    return d;
  }
  a = dnsbl_extra_wait();
  for (i = 0; i < nrbl; ++i) {
    const struct rblline *l = &rbls[i];
    if (l->idx < 0 || a[l->idx].state != DNSBL_X_LISTED || !rbl_match(&a[l->idx], l->matchon))
      continue;  /* not listed, or DNS trouble: qmail-ldap lets the mail through */
    if (val[S_RBLONLYHEADER] || !strcmp(l->action, "addheader")) {
      if (!rbl_header(l)) return q(451, "4.3.0", "out of memory", "nomem");
      continue;
    }
    rblhdr.len = 0;
    if (!stralloc_copys(&txt, "sorry, your mailserver [") || !stralloc_cats(&txt, s->remoteip) ||
        !stralloc_cats(&txt, "] is rejected by ") || !stralloc_catb(&txt, l->message,
        strlen(l->message) > 300 ? 300 : strlen(l->message)) || !stralloc_0(&txt))
      return q(451, "4.3.0", "out of memory", "nomem");
    printable(txt.s, txt.len - 1);
    return q(553, 0, txt.s, "rbl");
  }
  return DECISION_NONE;
}

const char *switches_header(void)
{
  if (!rblhdr.len || !stralloc_0(&rblhdr)) return 0;
  --rblhdr.len;
  return rblhdr.s;
}

/* sagredo's dnsbllist lines: [+|-|=]zone[:[-]text with %IP%] */
struct bline { const char *zone; int kind; const char *alt; int altbounce; int idx; };
enum { B_DEFER, B_ALLOW, B_BOUNCE, B_LOG };
static struct bline blines[LISTS_MAX];
static int nblines;

static void bl_parse(char *l, struct bline *b)
{
  char *c;
  b->kind = *l == '+' ? B_ALLOW : *l == '-' ? B_BOUNCE : *l == '=' ? B_LOG : B_DEFER;
  if (b->kind != B_DEFER) ++l;
  b->zone = l;
  b->alt = 0;
  b->altbounce = 0;
  if ((c = strchr(l, ':'))) {
    *c++ = 0;
    if (*c == '-') { b->altbounce = 1; ++c; }
    b->alt = c;
  }
}

/* bl_text - the alternative text with %IP% replaced, or the TXT record; printable, capped */
static const char *bl_text(const struct bline *b, const struct dnsbl_answer *a, const char *ip)
{
  static stralloc t;  /* its own: the verdict is given again at every RCPT */
  const char *p;
  t.len = 0;
  if (!b->alt) { if (!stralloc_copys(&t, a->txt)) return 0; }
  else
    for (p = b->alt; *p;) {
      if (!strncmp(p, "%IP%", 4)) { if (!stralloc_cats(&t, ip)) return 0; p += 4; }
      else if (!stralloc_append(&t, p++)) return 0;
    }
  if (t.len > 390) t.len = 390;
  printable(t.s, t.len);
  return stralloc_0(&t) ? t.s : 0;
}

static struct decision bl_refuse(int code, const char *text, const struct bline *b)
{
  static stralloc why;
  struct decision d;
  if (!text || !stralloc_copys(&why, "dnsbllist:") || !stralloc_cats(&why, b->zone) ||
      !stralloc_0(&why))
    return q(451, "4.3.0", "out of memory", "nomem");
  d = q(code, 0, text, why.s);
  d.drop = code == 451;  /* sagredo: die_rbldelay */
  return d;
}

/* bl_decide - sagredo's rblcheck over the answers: the first decision stops */
static struct decision bl_decide(struct session *s, const struct dnsbl_answer *a, int failclosed)
{
  int i, mustnotbounce = 0;
  for (i = 0; i < nblines; ++i) {
    const struct bline *b = &blines[i];
    int st = b->idx < 0 ? DNSBL_X_FAIL : b->alt ? a[b->idx].state : a[b->idx].txtstate;
    if (st == DNSBL_X_NOT) continue;
    if (st != DNSBL_X_LISTED) {
      mustnotbounce = 1;
      if (!failclosed) continue;
      if (b->kind == B_ALLOW || b->kind == B_LOG) return DECISION_NONE;
      return bl_refuse(451, "temporary RBL lookup error", b);
    }
    if (b->kind == B_ALLOW || b->kind == B_LOG) {
      if (log_on(LOG_INFO)) {  /* sagredo's RBLRESULT accept / ignore */
        log_start("dnsbllist");
        log_str("ip", s->remoteip);
        log_str("zone", b->zone);
        log_str("result", b->kind == B_ALLOW ? "accept" : "listed");
        log_end();
      }
      return DECISION_NONE;
    }
    return bl_refuse((b->kind == B_BOUNCE || b->altbounce) && !mustnotbounce ? 553 : 451,
                     bl_text(b, &a[b->idx], s->remoteip), b);
  }
  return DECISION_NONE;
}

struct decision switches_dnsbllist(struct session *s)
{
  static int decided;
  static struct decision verdict;
  static stralloc sa;
  const char *fn = val[S_DNSBLLIST] ? val[S_DNSBLLIST] : "control/dnsbllist";
  int failclosed = -1;
  size_t i, next;
  int r;
  if (s->relayclient || s->auth_user || val[S_DNSBLSKIP] || val[S_RBLSMTPD]) return DECISION_NONE;
  if (decided) return verdict;  /* sagredo: once per session, the verdict stays */
  decided = 1;
  if ((r = control_readfile(&sa, fn)) == -1) {
    verdict = ctlerr(fn);
    verdict.code = 421;
    verdict.drop = 1;
    return verdict;
  }
  if (!r || !sa.len) return verdict = DECISION_NONE;
  if (ctlnum(val[S_DNSBLFAILCLOSED], "control/dnsblfailclosed", &failclosed) == -1)
    return verdict = ctlerr("control/dnsblfailclosed");
  for (i = 0; i < sa.len; i = next) {
    char name[300];
    struct bline *b = &blines[nblines];
    next = i + strlen(sa.s + i) + 1;  /* before bl_parse cuts the line */
    if (nblines == LISTS_MAX) { loglists(fn, "too many lines: the rest are ignored", 0); break; }
    bl_parse(sa.s + i, b);
    b->idx = *b->zone && dnsbl_revname(name, sizeof name, s->remoteip, b->zone) > 0
             ? dnsbl_extra(name, !b->alt) : -1;
    ++nblines;
  }
  verdict = bl_decide(s, dnsbl_extra_wait(), failclosed > 0);
  return verdict;
}
