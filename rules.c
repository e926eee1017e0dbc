/* rules.c - the policy layer (see rules.h and mxguard-rules(8)).
 *
 * Two halves. The compiler (rules_parse_line, used by mxguard-rules) turns a source line -
 * the native form "[observe] [mandatory] ACTION [args] [if] fact=value... ["NNN x.y.z text"]"
 * or an Obtuse smtpd_check_rules line "action:Source:From:To[:NNN text]" - into position-free
 * bytes: globs lowercased, regexes compiled (pattern.c), CIDRs parsed. The daemon half reads
 * those bytes from control/rules.cdb and evaluates them where they lie, without parsing:
 *
 *   rule  = len(2) action(1) flags(1) stage(1) code(2) delay(2)
 *           origin NUL esc NUL text NUL args(NUL-separated, then NUL) conds 0
 *   cond  = fact(1) op(1) [env name NUL] values 0
 *   value = 'g' glob NUL | 'r' regex program | 'c' cidr(18) | 'a' local NUL domain NUL
 *         | 'k' K/U | 'b' zone NUL | 'x' (EXCEPT: what follows are exceptions)
 *
 * Facts are computed when a condition first needs them and kept for the command (the
 * dynamic-PTR list, the country and the DNS facts for the session). Per recipient the sets
 * run in this order: mandatory global rules, the user's (user-ext@d falls back to
 * user-ext-default@d ... user-default@d, user@d as .qmail files do), the domain's, the
 * global defaults; the first allow/deny/noto/defer ends the evaluation; set, tag and tarpit
 * take effect and the evaluation goes on; a setting keeps its first value, so a mandatory
 * setting beats the user's, which beats the domain's and the default. A broken rule set
 * (mxguard-rules compiled an error marker into it) or an unreadable cdb answers 451 4.3.0
 * for every recipient it concerns: no refusal or acceptance on a half-understood policy.
 * With no control/rules.cdb a session pays one failed open(). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <arpa/inet.h>
#include <open.h>
#include <cdb.h>
#include <fmt.h>
#include "addr.h"
#include "control.h"
#include "dnsbl.h"
#include "geoip.h"
#include "log.h"
#include "pattern.h"
#include "rules.h"
#include "stock.h"
#include "valuser.h"


const struct rules_setting rules_settings[] = {
  {"GREYLIST", "greylisting for this recipient (1 on, 0 off)"},
  /* content.c (mxguard-smtpd(8) CONTENT) */
  {"SPAMD", "spam scanning through spamd for this recipient (its address; empty: control/spamd)"},
  {"SPAMREJECT", "spam score at or over which the message is refused"},
  {"SPAMTAG", "spam score at or over which X-Spam headers are added"},
  {"SPAMMAXSIZE", "messages larger than this are not given to spamd"},
  {"SPAMDTIMEOUT", "seconds spamd may take"},
  {"SPAMDFAILOPEN", "spamd trouble lets the message through (1)"},
  {"SPAMDUSER", "the spamd user (rcpt: the recipient)"},
  {"CLAMD", "virus scanning through clamd for this recipient"},
  {"CLAMDMAXSIZE", "bytes given to clamd at most"},
  {"CLAMDTIMEOUT", "seconds clamd may take"},
  {"CLAMDFAILOPEN", "clamd trouble lets the message through (1)"},
  {"ATTACHBLOCK", "refuse attachments by name (control/badattach)"},
  {"ATTACHTYPES", "refuse attachments by declared type"},
  {"CHARSETBLOCK", "refuse (or tag) by charset"},
  {"HEADERBLOCK", "refuse by header regexes (control/headerblock)"},
  {"CONTENTCLASS", "one content policy per transaction (452 4.5.3 for another class)"},
  {"REJECTEXEC", "refuse Windows executables (qmail-ldap's switch)"},
  {"TARPITCOUNT", "recipients before the tarpit starts (qmail-ldap)"},
  {"GREYLISTDELAY", "seconds a new triplet waits (default 300)"},
  {"GREYLISTRETRY", "seconds a triplet may retry (default 2 days)"},
  {"GREYLISTEXPIRE", "seconds a passed triplet is kept (default 35 days)"},
  {"GREYLISTAUTOALLOW", "passes after which the client is allowed (default 5)"},
  {"GREYLISTHEADER", "add X-Greylist to a message that passed (1)"},
  {"RCPTRATE", "recipients per client and window (rate)"},
  {"RCPTRATE_SENDER", "recipients per sender and window (rate)"},
  {"RCPTRATE_AUTH", "recipients per AUTH user and window (rate)"},
  {"RCPTRATE_DOMAIN", "recipients per recipient domain and window (rate)"},
  {"TARPITDELAY", "seconds of tarpit per recipient (qmail-ldap)"},
  {"MAXRCPTCOUNT", "recipients per message, then 553 (qmail-ldap)"},
  {"DATAGRACE", "seconds of DATA before the minimum rate applies"},
  {"DATAMINRATE", "minimum average DATA rate, bytes per second, after the grace"},
  {0, 0},
};

int rules_setting_known(const char *name, size_t len)
{
  const struct rules_setting *r;
  for (r = rules_settings; r->name; ++r)
    if (strlen(r->name) == len && !strncasecmp(r->name, name, len)) return 1;
  return 0;
}

enum { A_ALLOW = 1, A_DENY, A_NOTO, A_DEFER, A_TARPIT, A_TAG, A_SET, A_DEBUG, A_ERROR };
enum { FL_OBSERVE = 1, FL_DROP = 2, FL_OBTUSE = 4, FL_MANDATORY = 8, FL_GROUP = 16 };
enum { K_STR, K_SET, K_NUM, K_IP };

enum {
  F_IP = 1, F_PTR, F_RDNS, F_FCRDNS, F_DYNAMIC, F_COUNTRY, F_DNSBL, F_DNSBLSCORE, F_RELAY, F_ENV,
  F_HELO, F_HELOCLASS, F_AUTH, F_TLS, F_CERT, F_FROM, F_FROMDOMAIN, F_FROMTLD, F_FROMTLDVALID,
  F_FROMLOCAL, F_SIZE, F_TO, F_TODOMAIN, F_TOLOCAL, F_OSRC, F_OFROM, F_OTO, F_MAX
};
static const struct fact { const char *name; int id, stage, kind; } facts[] = {
  {"ip", F_IP, STAGE_CONNECT, K_IP}, {"ptr", F_PTR, STAGE_CONNECT, K_STR},
  {"rdns", F_RDNS, STAGE_CONNECT, K_STR}, {"fcrdns", F_FCRDNS, STAGE_CONNECT, K_STR},
  {"dynamic", F_DYNAMIC, STAGE_CONNECT, K_STR}, {"country", F_COUNTRY, STAGE_CONNECT, K_STR},
  {"dnsbl", F_DNSBL, STAGE_CONNECT, K_SET}, {"dnsblscore", F_DNSBLSCORE, STAGE_CONNECT, K_NUM},
  {"relay", F_RELAY, STAGE_CONNECT, K_STR}, {"env", F_ENV, STAGE_CONNECT, K_STR},
  {"helo", F_HELO, STAGE_HELO, K_STR}, {"heloclass", F_HELOCLASS, STAGE_HELO, K_SET},
  {"auth", F_AUTH, STAGE_MAIL, K_STR}, {"tls", F_TLS, STAGE_MAIL, K_STR},
  {"cert", F_CERT, STAGE_MAIL, K_STR}, {"from", F_FROM, STAGE_MAIL, K_STR},
  {"fromdomain", F_FROMDOMAIN, STAGE_MAIL, K_STR}, {"fromtld", F_FROMTLD, STAGE_MAIL, K_STR},
  {"fromtldvalid", F_FROMTLDVALID, STAGE_MAIL, K_STR},
  {"fromlocal", F_FROMLOCAL, STAGE_MAIL, K_STR}, {"size", F_SIZE, STAGE_MAIL, K_NUM},
  {"to", F_TO, STAGE_RCPT, K_STR}, {"todomain", F_TODOMAIN, STAGE_RCPT, K_STR},
  {"tolocal", F_TOLOCAL, STAGE_RCPT, K_STR},
  {"src", F_OSRC, STAGE_CONNECT, K_STR}, {"ofrom", F_OFROM, STAGE_MAIL, K_STR},
  {"oto", F_OTO, STAGE_RCPT, K_STR},
  {0, 0, 0, 0},
};

static const struct fact *factbyid(int id)
{
  const struct fact *f;
  for (f = facts; f->name; ++f) if (f->id == id) return f;
  return 0;
}

/* ==================================================================== the compiler */

#define TOKENS_MAX 64
#define TEXT_MAX 400

struct tok { char *s; int quoted; };

static void lowercase(char *s) { for (; *s; ++s) if (*s >= 'A' && *s <= 'Z') *s += 32; }

/* tokens - split at blanks; "..." may hold blanks (\" and \\ inside); 0 or -1 */
static int tokens(char *line, struct tok *t, int *n, const char **err)
{
  char *r = line, *w;
  *n = 0;
  for (;;) {
    while (*r == ' ' || *r == '\t') ++r;
    if (!*r) return 0;
    if (*n == TOKENS_MAX) { *err = "too many words"; return -1; }
    t[*n].s = w = r;
    t[*n].quoted = *r == '"';
    while (*r && *r != ' ' && *r != '\t') {
      if (*r == '"') {
        ++r;
        while (*r && *r != '"') {
          if (*r == '\\' && (r[1] == '"' || r[1] == '\\')) ++r;
          *w++ = *r++;
        }
        if (*r != '"') { *err = "missing closing quote"; return -1; }
        ++r;
      } else *w++ = *r++;
    }
    if (*r) ++r;
    *w = 0;
    ++*n;
  }
}

static int put(stralloc *o, const void *x, size_t n) { return stralloc_catb(o, x, n) ? 0 : -1; }
static int puts0(stralloc *o, const char *x) { return put(o, x, strlen(x) + 1); }
static int putc1(stralloc *o, int c) { char ch = (char)c; return put(o, &ch, 1); }

/* printable - reply texts and tags: printable ASCII only, no CR/LF */
static int printable(const char *s)
{
  for (; *s; ++s) if ((unsigned char)*s < 32 || (unsigned char)*s > 126) return 0;
  return 1;
}

/* expansions - every % is one of F T H I U C M % */
static int expansions_ok(const char *s)
{
  for (; *s; ++s)
    if (*s == '%') {
      if (!s[1] || !strchr("FTHIUCM%", s[1])) return 0;
      ++s;
    }
  return 1;
}

struct rule {
  int action, flags, stage;
  unsigned code, delay;
  const char *origin, *esc, *text;
  stralloc args, conds;
};

/* emit - the rule into out */
static int emit(stralloc *out, struct rule *r, const char **err)
{
  size_t start = out->len, len;
  char h[9];
  h[0] = h[1] = 0;
  h[2] = (char)r->action; h[3] = (char)r->flags; h[4] = (char)r->stage;
  h[5] = (char)(r->code & 255); h[6] = (char)(r->code >> 8);
  h[7] = (char)(r->delay & 255); h[8] = (char)(r->delay >> 8);
  if (put(out, h, 9) || put(out, r->conds.s, r->conds.len) || putc1(out, 0) ||
      puts0(out, r->origin) || puts0(out, r->esc ? r->esc : "") ||
      puts0(out, r->text ? r->text : "") || put(out, r->args.s, r->args.len) || putc1(out, 0)) {
    *err = "out of memory";
    return -1;
  }
  len = out->len - start;
  if (len > 65535) { out->len = start; *err = "rule too long"; return -1; }
  out->s[start] = (char)(len & 255);
  out->s[start + 1] = (char)(len >> 8);
  return 0;
}

/* putglob - a glob, as 'e' exact, 's' "*suffix", 'p' "prefix*" (type, length, bytes, NUL:
 * compared with memcmp) or 'g' any other glob (type, text, NUL) */
static int putglob(stralloc *c, const char *v)
{
  size_t n = strlen(v);
  int type = 'g';
  const char *lit = v;
  if (!strpbrk(v, "*?")) type = 'e';
  else if (v[0] == '*' && !strpbrk(v + 1, "*?")) { type = 's'; ++lit; --n; }
  else if (n && v[n - 1] == '*' && strcspn(v, "*?") == n - 1) { type = 'p'; --n; }
  if (type == 'g' || n > 255) return putc1(c, 'g') || puts0(c, v) ? -1 : 0;
  if (putc1(c, type) || putc1(c, (int)n) || put(c, lit, n) || putc1(c, 0)) return -1;
  return 0;
}

/* value - one value of a native condition into conds */
static int value(stralloc *c, int kind, char *v, size_t len, const char **err)
{
  char cidr[PAT_CIDR_LEN];
  v[len] = 0;
  if (len >= 2 && v[0] == '/' && v[len - 1] == '/') {
    v[len - 1] = 0;
    if (putc1(c, 'r') || pat_recompile(c, v + 1, err)) return -2;
    return 0;
  }
  if (kind == K_IP && pat_cidr_parse(cidr, v) == 0) {
    if (putc1(c, 'c') || put(c, cidr, PAT_CIDR_LEN)) return -1;
    return 0;
  }
  if (kind == K_NUM && !(len >= 2 && v[0] == '/')) {
    size_t i;
    for (i = 0; v[i]; ++i) if (v[i] < '0' || v[i] > '9') { *err = "not a number"; return -1; }
    if (!i) { *err = "not a number"; return -1; }
  }
  lowercase(v);
  if (!strcmp(v, "<>")) *v = 0;  /* the null sender */
  return putglob(c, v);
}

/* condition - "fact OP values" into r->conds; -1 syntax, -2 regex */
static int condition(struct rule *r, char *tok, const char **err)
{
  char *p = tok, *v, *name = tok, save;
  const struct fact *f;
  size_t namelen;
  int op, depth = 0, numeric, isenv = 0;
  while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_') ++p;
  if (*p == '.' && p - tok == 3 && !strncmp(tok, "env", 3)) {
    isenv = 1;
    name = ++p;
    while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')
      ++p;
    if (p == name) { *err = "env. without a name"; return -1; }
  }
  namelen = (size_t)(p - name);
  if (p[0] == '!' && p[1] == '=') op = '!';
  else if (p[0] == '<' && p[1] == '=') op = 'l';
  else if (p[0] == '>' && p[1] == '=') op = 'G';
  else if (*p == '=' || *p == '<' || *p == '>') op = *p;
  else { *err = "expected fact=value"; return -1; }
  save = *p;
  *p = 0;
  for (f = facts; f->name; ++f) if (!strcmp(f->name, isenv ? "env" : tok)) break;
  *p = save;
  if (!f->name || f->id >= F_OSRC) { *err = "unknown fact"; return -1; }
  if (f->id == F_ENV && !isenv) { *err = "env needs a name: env.NAME"; return -1; }
  if (putc1(&r->conds, f->id) || putc1(&r->conds, op)) return -1;
  if (isenv && (put(&r->conds, name, namelen) || putc1(&r->conds, 0))) return -1;
  numeric = op != '=' && op != '!';
  if (numeric && f->kind != K_NUM) { *err = "< and > compare numbers only"; return -1; }
  p += op == '=' || op == '<' || op == '>' ? 1 : 2;
  if (!*p) { *err = "empty value (use <> for the null sender)"; return -1; }
  if (numeric && (strchr(p, ',') || *p == '/')) { *err = "< and > take one number"; return -1; }
  if (f->stage > r->stage) r->stage = f->stage;
  /* values: comma-separated; a /regex/ may hold commas */
  for (v = p;; ++p) {
    if (*p == '/' && p == v) depth = 1;
    else if (*p == '/' && depth && (p[1] == ',' || !p[1])) depth = 0;
    if ((*p == ',' && !depth) || !*p) {
      int end = !*p, rc;
      if (p == v) { *err = "empty value in a list"; return -1; }
      rc = value(&r->conds, numeric ? K_NUM : f->kind, v, (size_t)(p - v), err);
      if (rc) return rc;
      if (end) break;
      v = p + 1;
    }
  }
  return putc1(&r->conds, 0);
}

/* replytext - "[NNN] [x.y.z] text" for action a */
static int replytext(struct rule *r, char *t, const char **err)
{
  unsigned code = 0;
  char *esc = 0;
  if (!printable(t)) { *err = "reply text with control or non-ASCII characters"; return -1; }
  if (strlen(t) > TEXT_MAX) { *err = "reply text too long"; return -1; }
  if (t[0] >= '2' && t[0] <= '5' && t[1] >= '0' && t[1] <= '9' && t[2] >= '0' && t[2] <= '9' &&
      (t[3] == ' ' || !t[3])) {
    code = (unsigned)((t[0] - '0') * 100 + (t[1] - '0') * 10 + (t[2] - '0'));
    t += 3;
    while (*t == ' ') ++t;
  }
  if (t[0] >= '2' && t[0] <= '5' && t[1] == '.') {
    size_t n = strspn(t, "0123456789.");
    if (t[n] == ' ' || !t[n]) {
      esc = t;
      t += n;
      if (*t) *t++ = 0;
      while (*t == ' ') ++t;
    }
  }
  if (!expansions_ok(t)) { *err = "unknown % expansion in reply text"; return -1; }
  if (code) {
    int want = r->action == A_DEFER ? 4 : 5;
    if (code / 100 != (unsigned)want) {
      *err = r->action == A_DEFER ? "defer needs a 4xx code" : "deny and noto need a 5xx code";
      return -1;
    }
    r->code = code;
  }
  if (esc) {
    if ((unsigned)(esc[0] - '0') != r->code / 100) { *err = "status code class differs"; return -1; }
    r->esc = esc;
  }
  r->text = t;
  return 0;
}

static const struct { const char *name; int action; } actions[] = {
  {"allow", A_ALLOW}, {"deny", A_DENY}, {"noto", A_NOTO}, {"defer", A_DEFER},
  {"tarpit", A_TARPIT}, {"tag", A_TAG}, {"set", A_SET}, {0, 0},
};

static int native_body(stralloc out[2], char *line, const char *origin, int scope, const char **err,
                       struct rule *rp)
{
  struct tok t[TOKENS_MAX];
  int n, i = 0, k, rc;
  rp->origin = origin;
  rp->stage = STAGE_CONNECT;
  if (tokens(line, t, &n, err) == -1) return -1;
  for (; i < n && !t[i].quoted; ++i) {
    if (!strcmp(t[i].s, "observe")) rp->flags |= FL_OBSERVE;
    else if (!strcmp(t[i].s, "mandatory")) rp->flags |= FL_MANDATORY;
    else break;
  }
  if (i == n) { *err = "no action"; return -1; }
  for (k = 0; actions[k].name; ++k) if (!strcmp(actions[k].name, t[i].s)) break;
  if (!actions[k].name) { *err = "unknown action"; return -1; }
  rp->action = actions[k].action;
  ++i;
  switch (rp->action) {
    case A_DENY: rp->code = 550; break;
    case A_NOTO: rp->code = 550; rp->stage = STAGE_RCPT; break;
    case A_DEFER: rp->code = 451; break;
    case A_ALLOW: rp->code = 250; break;
    case A_TARPIT: {
      unsigned long secs = 0;
      size_t j;
      if (i == n || t[i].quoted || !t[i].s[0]) { *err = "tarpit needs seconds"; return -1; }
      for (j = 0; t[i].s[j]; ++j) {
        if (t[i].s[j] < '0' || t[i].s[j] > '9' || secs > 3600) { *err = "tarpit needs seconds (at most 3600)"; return -1; }
        secs = secs * 10 + (unsigned long)(t[i].s[j] - '0');
      }
      if (secs > 3600) { *err = "tarpit needs seconds (at most 3600)"; return -1; }
      rp->delay = (unsigned)secs;
      rp->stage = STAGE_RCPT;
      ++i;
      break;
    }
    case A_TAG:
      if (i == n || !t[i].quoted) { *err = "tag needs a quoted header line"; return -1; }
      if (!printable(t[i].s) || !strchr(t[i].s, ':') || t[i].s[0] == ' ' || strlen(t[i].s) > TEXT_MAX) {
        *err = "tag needs a printable \"Name: value\" header line";
        return -1;
      }
      {
        const char *c;
        for (c = t[i].s; *c != ':'; ++c)
          if (*c <= 32 || *c >= 127) { *err = "bad header name in tag"; return -1; }
      }
      if (put(&rp->args, t[i].s, strlen(t[i].s) + 1)) return -1;
      ++i;
      break;
    case A_SET:
      for (; i < n && !t[i].quoted; ++i) {
        char *eq = strchr(t[i].s, '='), *c;
        if (!strcmp(t[i].s, "if")) break;
        if (!eq || eq == t[i].s) break;
        for (c = t[i].s; c < eq; ++c)
          if (!((*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_')) break;
        if (c < eq) break;  /* lowercase: a condition */
        if (!rules_setting_known(t[i].s, (size_t)(eq - t[i].s))) {
          *err = "unknown setting name (see mxguard-rules(8))";
          return -1;
        }
        if (!printable(eq + 1) || strlen(eq + 1) > 200) { *err = "bad setting value"; return -1; }
        if (put(&rp->args, t[i].s, strlen(t[i].s) + 1)) return -1;
      }
      if (!rp->args.len) { *err = "set needs NAME=VALUE"; return -1; }
      break;
  }
  if (rp->action == A_DENY && i < n && !strcmp(t[i].s, "drop") && !t[i].quoted) {
    rp->flags |= FL_DROP;
    ++i;
  }
  if (i < n && !t[i].quoted && !strcmp(t[i].s, "if")) ++i;
  for (; i < n; ++i) {
    if (t[i].quoted) {
      if (i != n - 1) { *err = "the reply text must come last"; return -1; }
      if (rp->action == A_SET || rp->action == A_TAG || rp->action == A_TARPIT || rp->action == A_ALLOW) {
        *err = "only deny, noto and defer take a reply text";
        return -1;
      }
      if (replytext(rp, t[i].s, err) == -1) return -1;
      continue;
    }
    rc = condition(rp, t[i].s, err);
    if (rc) return rc;
  }
  if (scope == RS_DOMAIN || scope == RS_USER) {
    if (rp->flags & FL_MANDATORY) { *err = "mandatory belongs in the global rules"; return -1; }
    if (rp->action == A_TAG) { *err = "tag changes the message for every recipient: global rules only"; return -1; }
    if (rp->flags & FL_DROP) { *err = "drop ends the session for every recipient: global rules only"; return -1; }
    rp->stage = STAGE_RCPT;
  }
  if (emit(&out[(rp->flags & FL_MANDATORY) ? 0 : 1], rp, err) == -1) return -1;
  return 0;
}

/* reset - a rule's fields for the next line; its buffers are kept (they are static) */
static void reset(struct rule *r)
{
  r->action = r->flags = r->stage = 0;
  r->code = r->delay = 0;
  r->origin = r->esc = r->text = 0;
  r->args.len = r->conds.len = 0;
}

static int native(stralloc out[2], char *line, const char *origin, int scope, const char **err)
{
  static struct rule r;
  reset(&r);
  return native_body(out, line, origin, scope, err, &r);
}

/* ---- Obtuse smtpd_check_rules lines */

static int obtuse_list(stralloc *c, char *list, int which, const char **err)
{
  char *p = list;
  while (*p) {
    char *w;
    char cidr[PAT_CIDR_LEN];
    while (*p && strchr(", \t", *p)) ++p;
    if (!*p) break;
    w = p;
    while (*p && !strchr(", \t", *p)) ++p;
    if (*p) *p++ = 0;
    if (!strcasecmp(w, "EXCEPT")) { if (putc1(c, 'x')) return -1; continue; }
    if (!strcmp(w, "ALL")) { if (putc1(c, 'g') || puts0(c, "*")) return -1; continue; }
    if (which == F_OSRC) {
      if (!strcmp(w, "KNOWN") || !strcmp(w, "UNKNOWN")) {
        if (putc1(c, 'k') || putc1(c, w[0])) return -1;
        continue;
      }
      if (!strncmp(w, "RBL.", 4) && w[4]) {
        lowercase(w);
        if (putc1(c, 'b') || puts0(c, w + 4)) return -1;
        continue;
      }
      if (!strncmp(w, "NS=", 3)) { *err = "NS= patterns are not supported"; return -1; }
      if (strchr(w, '@')) {  /* ident@host: mxguard asks no ident, so never matches */
        if (putc1(c, 'k') || putc1(c, 'N')) return -1;
        continue;
      }
      if (pat_cidr_parse(cidr, w) == 0) {
        if (putc1(c, 'c') || put(c, cidr, PAT_CIDR_LEN)) return -1;
        continue;
      }
      if (*w == '0' && !w[1]) { pat_cidr_parse(cidr, "0.0.0.0/0"); if (putc1(c, 'c') || put(c, cidr, PAT_CIDR_LEN)) return -1; continue; }
    } else {
      char *at = strrchr(w, '@');
      size_t len = strlen(w);
      if (!strncmp(w, "NS=", 3) || (at && !strncmp(at + 1, "NS=", 3))) {
        *err = "NS= patterns are not supported";
        return -1;
      }
      if (len >= 2 && w[0] == '/' && w[len - 1] == '/' && !at) {
        w[len - 1] = 0;
        if (putc1(c, 'r') || pat_recompile(c, w + 1, err)) return -2;
        continue;
      }
      if (len && w[0] == '<' && w[len - 1] == '>') { w[len - 1] = 0; ++w; at = strrchr(w, '@'); }
      lowercase(w);
      if (at) {
        if (!strncmp(w, "user@", 5) && at == w + 4) {  /* USER: the ident user: never known */
          if (putc1(c, 'k') || putc1(c, 'N')) return -1;
          continue;
        }
        *at = 0;
        if (putc1(c, 'a') || puts0(c, w) || puts0(c, at + 1)) return -1;
        continue;
      }
    }
    lowercase(w);
    if (putglob(c, w)) return -1;
  }
  return putc1(c, 0);
}

static int obtuse_body(stralloc out[2], char *line, const char *origin, int scope, const char **err,
                       struct rule *rp)
{
  char *f[6], *p = line;
  int n = 0;
  rp->origin = origin;
  rp->stage = STAGE_RCPT;
  rp->flags = FL_OBTUSE;
  while (n < 6) {  /* strtok(":"): empty fields collapse; the 6th keeps the rest */
    while (*p == ':') ++p;
    if (!*p) break;
    f[n++] = p;
    if (n == 6) break;
    while (*p && *p != ':') ++p;
    if (*p) *p++ = 0;
  }
  if (n >= 5 && f[4][0] == '#') n = 4;  /* a comment, not a message */
  else if (n == 6 && f[5][0] != '#') { *err = "junk at end of line"; return -1; }
  if (n == 6) n = 5;
  if (n < 4) { *err = "fewer than four fields"; return -1; }
  if (!strcmp(f[0], "allow")) rp->action = A_ALLOW;
  else if (!strcmp(f[0], "deny")) { rp->action = A_DENY; rp->flags |= FL_DROP; }
  else if (!strcmp(f[0], "noto")) rp->action = A_NOTO;
  else if (!strcmp(f[0], "deny_delay")) { rp->action = A_DENY; rp->flags |= FL_DROP; rp->delay = 5; }
  else if (!strcmp(f[0], "noto_delay")) { rp->action = A_NOTO; rp->delay = 5; }
  else if (!strcmp(f[0], "debug")) rp->action = A_DEBUG;
  else { *err = "unknown action"; return -1; }
  if (scope == RS_DOMAIN || scope == RS_USER) rp->flags &= ~FL_DROP;  /* cannot end others' mail */
  rp->code = rp->action == A_ALLOW ? 250 : 550;
  if (putc1(&rp->conds, F_OSRC) || putc1(&rp->conds, '=')) return -1;
  if (obtuse_list(&rp->conds, f[1], F_OSRC, err)) return -1;
  if (putc1(&rp->conds, F_OFROM) || putc1(&rp->conds, '=')) return -1;
  if (obtuse_list(&rp->conds, f[2], F_OFROM, err)) return -1;
  if (putc1(&rp->conds, F_OTO) || putc1(&rp->conds, '=')) return -1;
  if (obtuse_list(&rp->conds, f[3], F_OTO, err)) return -1;
  if (n == 5 && rp->action != A_ALLOW && rp->action != A_DEBUG) {
    char *m = f[4];
    if (!printable(m) || strlen(m) > TEXT_MAX) { *err = "message with control or non-ASCII characters"; return -1; }
    if (m[0] >= '4' && m[0] <= '5' && m[1] >= '0' && m[1] <= '9' && m[2] >= '0' && m[2] <= '9' &&
        expansions_ok(m)) {
      rp->code = (unsigned)((m[0] - '0') * 100 + (m[1] - '0') * 10 + (m[2] - '0'));
      m += 3;
      while (*m == ' ') ++m;
      rp->text = m;
    } else rp->text = "Recipient not allowed";
  } else if (rp->action != A_ALLOW && rp->action != A_DEBUG)
    rp->text = "Mail from %F to %T prohibited from your location (%U@%H ip=%I)";
  if (emit(&out[1], rp, err) == -1) return -1;
  return 0;
}

static int obtuse(stralloc out[2], char *line, const char *origin, int scope, const char **err)
{
  static struct rule r;
  reset(&r);
  return obtuse_body(out, line, origin, scope, err, &r);
}

int rules_parse_line(stralloc out[2], const char *line, const char *origin, int scope,
                     const char **err)
{
  static stralloc copy;
  const char *p = line;
  size_t n;
  while (*p == ' ' || *p == '\t') ++p;
  if (!*p || *p == '#') return 0;
  n = strlen(p);
  while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r')) --n;
  if (n > 4000) { *err = "line too long"; return -1; }
  {
    size_t i;
    for (i = 0; i < n; ++i)
      if (((unsigned char)p[i] < 32 && p[i] != '\t') || p[i] == 127) {
        *err = "control character in the line";
        return -1;
      }
  }
  if (!stralloc_copyb(&copy, p, n) || !stralloc_0(&copy)) { *err = "out of memory"; return -1; }
  {
    size_t w = strspn(copy.s, "abcdefghijklmnopqrstuvwxyz_");
    if (copy.s[w] == ':' && w) return obtuse(out, copy.s, origin, scope, err);
  }
  return native(out, copy.s, origin, scope, err);
}

/* the dynamic-PTR list: entries of total length (2), trigram + 1 (2), program */
int rules_dynamic_add(stralloc *out, const char *re, const char **err)
{
  size_t start = out->len, n;
  unsigned t;
  if (!stralloc_catb(out, "\0\0\0\0", 4)) { *err = "out of memory"; return -1; }
  if (pat_recompile(out, re, err) == -1) { out->len = start; return -1; }
  n = out->len - start;
  if (n > 65535) { out->len = start; *err = "pattern too long"; return -1; }
  t = pat_trigram(out->s + start + 4);
  out->s[start] = (char)(n & 255); out->s[start + 1] = (char)(n >> 8);
  out->s[start + 2] = (char)(t & 255); out->s[start + 3] = (char)(t >> 8);
  return 0;
}

/* ==================================================================== the daemon */

void (*rules_trace)(const char *what, const char *detail);
void (*rules_observer)(const struct decision *d);

static struct session *S;
static int cdbfd = -2;          /* -2: not looked at yet; -1: none */
static int broken;              /* the cdb is unreadable or damaged */
static struct cdb db;
struct blob { const char *s; size_t len; stralloc buf; };
static struct blob gset[2];     /* mandatory, default */
static struct blob eset[2];     /* their allow and set rules before RCPT (E, e) */
static struct blob dyn;         /* the dynamic-PTR programs */
static int dynloaded, observeall = -1, delayreject = -1;
static unsigned used;           /* fact bitmap from the cdb key "H" */

/* the facts */
static stralloc fv[F_MAX];
static char fok[F_MAX];
static char ipbin[PAT_CIDR_LEN];
static uint32 ip4;  /* the IPv4 address in host order, when ipok */
static int ipok;
static const char *matched;     /* the fact value of the last condition that matched (%M) */

/* settings: "NAME=VALUE\0" entries of the recipient being checked (or of the session) */
static stralloc cur;
static stralloc acc;            /* accepted recipients' settings blocks, each ending in "\0" */
static unsigned accoff[RCPT_MAX + 1], naccepted;
static stralloc tags;           /* of the message: the tags of its accepted recipients */
static stralloc curtags;        /* of the recipient being checked, kept if it is accepted */
static unsigned nobserved;
static unsigned tarpit_ms;

static void trace(const char *what, const char *detail)
{
  if (rules_trace) rules_trace(what, detail);
}

/* cdbget - the value of key: where the cdb is mapped, in place (no copy); else read into
 * b->buf. 1 found, 0 not, -1 error */
static int cdbget(const char *key, size_t klen, struct blob *b)
{
  int r = cdb_find(&db, (const unsigned char *)key, klen);
  uint32 pos, n;
  if (r == -1) return -1;
  b->len = 0;
  b->s = "";
  if (!r) return 0;
  pos = cdb_datapos(&db);
  n = cdb_datalen(&db);
  if (n > 16 * 1024 * 1024) return -1;
  if (db.map) {
    if ((uint64)pos + n > db.size) return -1;
    b->s = db.map + pos;
    b->len = n;
    return 1;
  }
  if (!stralloc_ready(&b->buf, n + 1)) return -1;
  if (cdb_read(&db, (unsigned char *)b->buf.s, n, pos) == -1) return -1;
  b->s = b->buf.s;
  b->len = n;
  return 1;
}

/* load - open the cdb once per session: 1 rules exist, 0 none, -1 broken (451) */
static int load(void)
{
  static struct blob v;
  if (cdbfd != -2) return broken ? -1 : cdbfd >= 0;
  cdbfd = open_read(RULES_CDB);
  if (cdbfd == -1) {
    if (errno == ENOENT) return 0;
    broken = 1;
    return -1;
  }
  cdb_init(&db, cdbfd);
  if (db.map) {  /* pread, not mmap: fault-around maps 64 KB for every page touched (RSS) */
    munmap(db.map, db.size);
    db.map = 0;
  }
  /* H: the magic, the facts used, then the four global sets G g E e, in one read */
  if (cdbget("H", 1, &v) != 1 || v.len < sizeof RULES_MAGIC + 20 ||
      memcmp(v.s, RULES_MAGIC, sizeof RULES_MAGIC)) {
    broken = 1;
    return -1;
  }
  {
    const unsigned char *h = (const unsigned char *)v.s + sizeof RULES_MAGIC;
    size_t off = sizeof RULES_MAGIC + 20, k;
    used = (unsigned)h[0] | (unsigned)h[1] << 8 | (unsigned)h[2] << 16 | (unsigned)h[3] << 24;
    for (k = 0; k < 4; ++k) {
      const unsigned char *l = h + 4 + 4 * k;
      size_t n = (size_t)l[0] | (size_t)l[1] << 8 | (size_t)l[2] << 16 | (size_t)l[3] << 24;
      struct blob *b = k < 2 ? &gset[k] : &eset[k - 2];
      if (n > v.len - off) { broken = 1; return -1; }
      b->s = v.s + off;
      b->len = n;
      off += n;
    }
  }
  return 1;
}

int rules_header(stralloc *out, unsigned factbits, const stralloc sets[4])
{
  unsigned char h[20];
  int k;
  h[0] = (unsigned char)factbits; h[1] = (unsigned char)(factbits >> 8);
  h[2] = (unsigned char)(factbits >> 16); h[3] = (unsigned char)(factbits >> 24);
  for (k = 0; k < 4; ++k) {
    size_t n = sets[k].len;
    h[4 + 4 * k] = (unsigned char)n; h[5 + 4 * k] = (unsigned char)(n >> 8);
    h[6 + 4 * k] = (unsigned char)(n >> 16); h[7 + 4 * k] = (unsigned char)(n >> 24);
  }
  if (!stralloc_copyb(out, RULES_MAGIC, sizeof RULES_MAGIC) || !stralloc_catb(out, (char *)h, 20))
    return -1;
  for (k = 0; k < 4; ++k)
    if (sets[k].len && !stralloc_catb(out, sets[k].s, sets[k].len)) return -1;
  return 0;
}

static int getflag(int *v, const char *name, int def)
{
  if (*v < 0) {
    const char *x = getenv(name);
    *v = x ? (*x && strcmp(x, "0") && strcasecmp(x, "no") && strcasecmp(x, "off")) : def;
  }
  return *v;
}

static void invalidate(int from, int to)
{
  int i;
  for (i = from; i <= to; ++i) fok[i] = 0;
}

static int setfact(int id, const char *s, size_t len)
{
  if (!stralloc_copyb(&fv[id], s, len) || !stralloc_0(&fv[id])) return -1;
  fok[id] = 1;
  return 0;
}
static int setfacts(int id, const char *s) { return setfact(id, s, strlen(s)); }
static int setlower(int id, const char *s, size_t len)
{
  size_t i;
  if (setfact(id, s, len) == -1) return -1;
  for (i = 0; i < len; ++i) if (fv[id].s[i] >= 'A' && fv[id].s[i] <= 'Z') fv[id].s[i] += 32;
  return 0;
}

static const char *dnsname(int st)
{
  return st == DNS_OK ? "ok" : st == DNS_NONE ? "none" : st == DNS_MISMATCH ? "mismatch" :
         st == DNS_TEMP ? "temp" : "unknown";
}

static const char *ptrname(void)
{
  if (S->rdns == DNS_OK && S->rdns_name) return S->rdns_name;
  if (S->rdns == DNS_UNKNOWN && S->remotehost && strcmp(S->remotehost, "unknown")) return S->remotehost;
  return "";
}

static int isip(const char *h)
{
  char b[PAT_CIDR_LEN];
  return pat_ip_parse(b, h) == 0;
}

static int validhost(const char *h)
{
  size_t label = 0, n = 0;
  const char *p;
  if (!*h) return 0;
  for (p = h; *p; ++p, ++n) {
    char c = *p;
    if (c == '.') {
      if (!label || p[-1] == '-') return 0;
      label = 0;
      continue;
    }
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
      return 0;
    if (!label && c == '-') return 0;
    if (++label > 63) return 0;
  }
  return n <= 253 && label && p[-1] != '-';
}

static int heloclass(void)
{
  static stralloc me;
  static int meok = -2;
  stralloc *o = &fv[F_HELOCLASS];
  const char *h = S->helo.s ? S->helo.s : "";
  const char *ptr = ptrname();
  const char *lip = getenv("TCPLOCALIP"), *lhost = getenv("TCPLOCALHOST");
  size_t hl = S->helo.len;
  int literal = hl > 2 && h[0] == '[' && h[hl - 1] == ']';
  o->len = 0;
  if (meok == -2) meok = control_readline(&me, "control/me") == 1 && stralloc_0(&me);
  if (!hl) return stralloc_catb(o, "none", 5) ? 0 : -1;
  if (literal && !stralloc_catb(o, "literal", 8)) return -1;
  if (!literal && isip(h) && !stralloc_catb(o, "ip", 3)) return -1;
  if (!literal && !strchr(h, '.') && !stralloc_catb(o, "nodot", 6)) return -1;
  if (!literal && !validhost(h) && !stralloc_catb(o, "invalid", 8)) return -1;
  {
    int self = (meok == 1 && !strcasecmp(h, me.s)) || (lhost && !strcasecmp(h, lhost));
    if (lip && !self) {
      if (literal) {
        const char *in = h + 1;
        size_t l = hl - 2;
        if (l > 5 && !strncasecmp(in, "ipv6:", 5)) { in += 5; l -= 5; }
        self = strlen(lip) == l && !strncasecmp(in, lip, l);
      } else self = !strcmp(h, lip);
    }
    if (self && !stralloc_catb(o, "self", 5)) return -1;
  }
  if (*ptr && strcasecmp(ptr, h) && !stralloc_catb(o, "mismatch", 9)) return -1;
  fok[F_HELOCLASS] = 1;
  return 0;
}

static int dynamic(void)
{
  const char *ptr = ptrname();
  size_t i = 0;
  if (!*ptr) return setfacts(F_DYNAMIC, "no");
  if (!dynloaded) {
    if (cdbget("P", 1, &dyn) == -1) return -1;
    dynloaded = 1;
  }
  if (setlower(F_PTR, ptr, strlen(ptr)) == -1) return -1;
  {
    unsigned char map[PAT_TRI_BYTES];
    const unsigned char *d = (const unsigned char *)dyn.s;
    pat_trigrams(fv[F_PTR].s, map);
    while (i + 4 < dyn.len) {
      size_t l = (size_t)d[i] | (size_t)d[i + 1] << 8;
      unsigned t = (unsigned)d[i + 2] | (unsigned)d[i + 3] << 8;
      if (l < 5 || i + l > dyn.len) return -1;  /* a damaged list */
      if (pat_trigram_in(t, map) && pat_rematch(dyn.s + i + 4, fv[F_PTR].s) == 1)
        return setfacts(F_DYNAMIC, "yes");
      i += l;
    }
  }
  return setfacts(F_DYNAMIC, "no");
}

static int addrfacts(int whole, int dom, int tld, const char *a, size_t len)
{
  const char *at = memchr(a, '@', len) ? a + len : 0;
  if (setlower(whole, a, len) == -1) return -1;
  if (at) while (*--at != '@') ;
  if (dom && setlower(dom, at ? at + 1 : "", at ? len - (size_t)(at + 1 - a) : 0) == -1) return -1;
  if (tld) {
    const char *d = fv[dom].s, *dot = strrchr(d, '.');
    if (setfacts(tld, dot ? dot + 1 : d) == -1) return -1;
  }
  return 0;
}

/* fact - compute fact id on first use; -1 on trouble (the caller answers 451) */
static int fact(int id, const char *envname)
{
  char num[FMT_ULONG];
  if (id == F_ENV) {
    const char *x = getenv(envname);
    if (!x) return fok[F_ENV] = 0, fv[F_ENV].len = 0, 1;
    return setlower(F_ENV, x, strlen(x)) == -1 ? -1 : 2;
  }
  if (fok[id]) return 0;
  switch (id) {
    case F_IP: return setfacts(F_IP, S->remoteip);
    case F_PTR: { const char *p = ptrname(); return setlower(F_PTR, p, strlen(p)); }
    case F_RDNS:
      dnsbl_wait();
      return setfacts(F_RDNS, S->rdns == DNS_UNKNOWN ? (*ptrname() ? "ok" : "unknown") : dnsname(S->rdns));
    case F_FCRDNS: dnsbl_wait(); return setfacts(F_FCRDNS, dnsname(S->fcrdns));
    case F_DYNAMIC: dnsbl_wait(); return dynamic();
    case F_COUNTRY: {
      char cc[3];
      const char *given = getenv("MXG_COUNTRY");  /* explain --country */
      int r = given ? 0 : geoip_country(S->remoteip, cc);
      if (given) return setlower(F_COUNTRY, given, strlen(given) > 2 ? 2 : strlen(given));
      if (r == -1) return -1;
      if (r != 1) return setfacts(F_COUNTRY, "");
      return setlower(F_COUNTRY, cc, 2);
    }
    case F_DNSBL:
      dnsbl_wait();
      if (dnsbl_zones(&fv[F_DNSBL]) == -1) return -1;
      {
        size_t i;
        for (i = 0; i < fv[F_DNSBL].len; ++i)
          if (fv[F_DNSBL].s[i] >= 'A' && fv[F_DNSBL].s[i] <= 'Z') fv[F_DNSBL].s[i] += 32;
      }
      fok[F_DNSBL] = 1;
      return 0;
    case F_DNSBLSCORE:
      dnsbl_wait();
      if (S->dnsbl_score < 0) return setfacts(F_DNSBLSCORE, "0");
      num[fmt_ulong(num, (unsigned long)S->dnsbl_score)] = 0;
      return setfacts(F_DNSBLSCORE, num);
    case F_RELAY: return setfacts(F_RELAY, S->relayclient ? "yes" : "no");
    case F_HELO: return setlower(F_HELO, S->helo.s ? S->helo.s : "", S->helo.len);
    case F_HELOCLASS: return heloclass();
    case F_AUTH: { const char *u = S->auth_user ? S->auth_user : ""; return setlower(F_AUTH, u, strlen(u)); }
    case F_TLS: return setfacts(F_TLS, S->tls ? "yes" : "no");
    case F_CERT: { const char *c = S->cert ? S->cert : ""; return setlower(F_CERT, c, strlen(c)); }
    case F_FROM: case F_FROMDOMAIN: case F_FROMTLD: case F_OFROM:
      return addrfacts(F_FROM, F_FROMDOMAIN, F_FROMTLD, S->mailfrom.s ? S->mailfrom.s : "", S->mailfrom.len);
    case F_FROMTLDVALID: {
      static stralloc k;
      int r;
      if (fact(F_FROMTLD, 0) == -1) return -1;
      if (!*fv[F_FROMTLD].s) return setfacts(F_FROMTLDVALID, "no");
      if (!stralloc_copys(&k, "t") || !stralloc_cats(&k, fv[F_FROMTLD].s)) return -1;
      r = cdb_find(&db, (const unsigned char *)"T", 1);
      if (r == -1) return -1;
      if (!r) return setfacts(F_FROMTLDVALID, "unknown");
      r = cdb_find(&db, (const unsigned char *)k.s, k.len);
      if (r == -1) return -1;
      return setfacts(F_FROMTLDVALID, r ? "yes" : "no");
    }
    case F_FROMLOCAL: {
      struct vu_result res;
      if (!S->mailfrom.len) return setfacts(F_FROMLOCAL, "no");
      valuser_lookup(S->mailfrom.s, S->mailfrom.len, &res);
      return setfacts(F_FROMLOCAL, res.r == VU_YES ? "yes" : res.r == VU_NO ? "no" :
                                   res.r == VU_SKIP ? "notlocal" : "temp");
    }
    case F_SIZE:
      num[fmt_ulong(num, S->declared_size)] = 0;
      return setfacts(F_SIZE, num);
    case F_TO: case F_TODOMAIN: case F_OTO:
      return addrfacts(F_TO, F_TODOMAIN, 0, S->rcpt.s, S->rcpt.len);
    case F_TOLOCAL: {
      int r = stock_allowed(S->rcpt.s, S->rcpt.len);
      if (r == -1) return -1;
      return setfacts(F_TOLOCAL, r ? "yes" : "no");
    }
    case F_OSRC: {  /* the PTR name (or "unknown"), then the IP */
      const char *p = ptrname();
      if (setlower(F_OSRC, *p ? p : "unknown", strlen(*p ? p : "unknown")) == -1) return -1;
      return stralloc_catb(&fv[F_OSRC], S->remoteip, strlen(S->remoteip) + 1) ? 0 : -1;
    }
  }
  return -1;
}

static unsigned long num(const char *s)
{
  unsigned long u = 0;
  while (*s >= '0' && *s <= '9') u = u * 10 + (unsigned long)(*s++ - '0');
  return u;
}

/* skipvalue - the value after the one at p */
static const char *skipvalue(const char *p)
{
  switch (*p) {
    case 'g': case 'b': return p + 2 + strlen(p + 1);
    case 'e': case 's': case 'p': return p + 3 + (unsigned char)p[1];
    case 'r': return p + 1 + pat_relen(p + 1);
    case 'c': return p + 1 + PAT_CIDR_LEN;
    case 'a': p += 2 + strlen(p + 1); return p + strlen(p) + 1;
    case 'k': return p + 2;
    default: return p + 1;
  }
}

/* one - does the value at p match the fact? */
static int one(int id, const char *p)
{
  const char *f = fv[id].s, *end = fv[id].s + fv[id].len;
  int kind = p[0], multi = id == F_HELOCLASS || id == F_DNSBL || id == F_OSRC;
  const char *arg = p + 1;
  if (kind == 'c') {
    if (!ipok) ipok = pat_ip_parse(ipbin, S->remoteip) == 0 ? 1 : -1;
    if (ipok != 1) return 0;
    if (pat_cidr_match(arg, ipbin)) { matched = S->remoteip; return 1; }
    return 0;
  }
  if (kind == 'k') {
    const char *ptr = ptrname();
    if (*arg == 'K') return *ptr != 0;
    if (*arg == 'U') return *ptr == 0;
    return 0;
  }
  if (kind == 'b') {
    static stralloc z;
    size_t i;
    dnsbl_wait();
    if (dnsbl_zones(&z) == -1) return 0;
    for (i = 0; i < z.len; i += strlen(z.s + i) + 1)
      if (!strcasecmp(z.s + i, arg)) { matched = arg; return 1; }
    return 0;
  }
  for (; f < end; f += strlen(f) + 1) {  /* each element of the fact */
    int m = 0;
    if (kind == 'e' || kind == 's' || kind == 'p') {
      size_t n = (unsigned char)arg[0], fl = multi ? strlen(f) : (size_t)(end - f) - 1;
      const char *lit = arg + 1;
      if (kind == 'e') m = fl == n && !memcmp(f, lit, n);
      else if (kind == 's') m = fl >= n && !memcmp(f + fl - n, lit, n);
      else m = fl >= n && !memcmp(f, lit, n);
    } else if (kind == 'g') m = pat_glob(arg, f);
    else if (kind == 'r') m = pat_rematch(arg, f) == 1;
    else if (kind == 'a') {
      const char *at = strrchr(f, '@'), *dom = arg + strlen(arg) + 1;
      static stralloc local;
      if (at && stralloc_copyb(&local, f, (size_t)(at - f)) && stralloc_0(&local))
        m = pat_glob(arg, local.s) && pat_glob(dom, at + 1);
    }
    if (m) { matched = f; return 1; }
    if (!multi) break;
  }
  return 0;
}

/* list - values up to the terminating 0: any before an 'x' matches and the rest (after the
 * 'x', recursively) does not: tcp_wrappers' EXCEPT */
static unsigned vindex;  /* which value of the list matched (for grouped rules) */

static int list(int id, const char *p, const char **end)
{
  int any = 0, multi = id == F_HELOCLASS || id == F_DNSBL || id == F_OSRC;
  unsigned i = 0;
  const char *f = fv[id].s;
  size_t fl = fv[id].len ? fv[id].len - 1 : 0;
  /* the common values of a single-valued fact are compared here, inline: a grouped list of
   * networks or domains costs a few instructions a value */
  if (!multi && (f || !fl))
    while (!any && (*p == 'e' || *p == 's' || *p == 'p' || *p == 'c')) {
      size_t n = (unsigned char)p[1];
      const char *lit = p + 2;
      int m;
      if (*p == 'c') {
        if (!ipok) {
          ipok = pat_ip_parse(ipbin, S->remoteip) == 0 ? 1 : -1;
          ip4 = (uint32)(unsigned char)ipbin[2] << 24 | (uint32)(unsigned char)ipbin[3] << 16 |
                (uint32)(unsigned char)ipbin[4] << 8 | (uint32)(unsigned char)ipbin[5];
        }
        if (ipok == 1 && p[1] == 4 && ipbin[0] == 4) {  /* IPv4: one masked compare */
          const unsigned char *a = (const unsigned char *)p + 3;
          unsigned bits = (unsigned char)p[2];
          uint32 net = (uint32)a[0] << 24 | (uint32)a[1] << 16 | (uint32)a[2] << 8 | a[3];
          uint32 mask = bits ? 0xffffffffu << (32 - bits) : 0;
          m = ((net ^ ip4) & mask) == 0;
        } else
          m = ipok == 1 && p[1] == ipbin[0] && pat_cidr_match(p + 1, ipbin);
        if (m) matched = S->remoteip;
        p += 1 + PAT_CIDR_LEN;
      } else {
        if (*p == 'e') m = fl == n && (!n || (f[0] == lit[0] && !memcmp(f, lit, n)));
        else if (*p == 's')
          m = fl >= n && (!n || (f[fl - 1] == lit[n - 1] && (n < 8 || f[fl - 8] == lit[n - 8]) &&
                                 !memcmp(f + fl - n, lit, n)));
        else m = fl >= n && (!n || (f[0] == lit[0] && !memcmp(f, lit, n)));
        if (m) matched = f;
        p += 3 + n;
      }
      if (m) { any = 1; vindex = i; }
      ++i;
    }
  while (*p && *p != 'x') {
    if (!any && one(id, p)) { any = 1; vindex = i; }
    p = skipvalue(p);
    ++i;
  }
  if (*p == 'x') {
    int ex = list(id, p + 1, end);
    return any && !ex;
  }
  *end = p + 1;
  return any;
}

/* skipconds - past the conditions at p (and their terminating 0) */
static const char *skipconds(const char *p)
{
  while (*p) {
    int id = (unsigned char)p[0];
    p += 2;
    if (id == F_ENV) p += strlen(p) + 1;
    while (*p) p = *p == 'x' ? p + 1 : skipvalue(p);
    ++p;
  }
  return p + 1;
}

/* conds - all conditions at p hold: 1 (then *after is past them), 0, -1 trouble */
static int conds(const char *p, const char **after)
{
  while (*p) {
    int id = (unsigned char)p[0], op = p[1], r;
    const char *envname = 0, *end;
    p += 2;
    if (id == F_ENV) { envname = p; p += strlen(p) + 1; }
    if (id <= 0 || id >= F_MAX) return -1;
    if (id == F_OFROM) id = F_FROM;  /* the same strings, matched with Obtuse's patterns */
    else if (id == F_OTO) id = F_TO;
    r = fok[id] && id != F_ENV ? 0 : fact(id, envname);
    if (r == -1) return -1;
    if (id == F_ENV && r == 1) {  /* unset: only != holds */
      if (op != '!') return 0;
      while (*p) p = *p == 'x' ? p + 1 : skipvalue(p);
      ++p;
      continue;
    }
    if (op == '=' || op == '!') {
      int m = list(id, p, &end);
      p = end;
      if (m != (op == '=')) return 0;
    } else {
      unsigned long a = num(fv[id].s), b = num(p + 2);
      int m = op == '<' ? a < b : op == '>' ? a > b : op == 'l' ? a <= b : a >= b;
      if (!m) return 0;
      p = skipvalue(p) + 1;
      matched = fv[id].s;
    }
  }
  *after = p + 1;
  return 1;
}

/* settings */
static const char *getin(const char *blk, size_t len, const char *name)
{
  size_t n = strlen(name), i = 0;
  while (i < len && blk[i]) {
    const char *e = blk + i;
    if (!strncasecmp(e, name, n) && e[n] == '=') return e + n + 1;
    i += strlen(e) + 1;
  }
  return 0;
}

static int atdata;  /* after rules_data(): the message's settings are its first recipient's */

const char *rules_get(const char *name)
{
  const char *v;
  if (atdata) return rules_get_rcpt(0, name);
  v = getin(cur.s, cur.len, name);
  return v ? v : getenv(name);
}

void rules_data(void) { atdata = 1; }

const char *rules_get_rcpt(unsigned i, const char *name)
{
  const char *v;
  if (i >= naccepted) return 0;
  v = getin(acc.s + accoff[i], accoff[i + 1] - accoff[i], name);
  return v ? v : getenv(name);
}

static int setone(const char *nv)
{
  const char *eq = strchr(nv, '=');
  size_t n = (size_t)(eq - nv), i = 0;
  while (i < cur.len && cur.s[i]) {
    if (!strncasecmp(cur.s + i, nv, n) && cur.s[i + n] == '=') return 0;  /* first wins */
    i += strlen(cur.s + i) + 1;
  }
  if (cur.len && !cur.s[cur.len - 1]) --cur.len;  /* drop the block's end mark */
  if (!stralloc_cats(&cur, nv) || !stralloc_0(&cur) || !stralloc_0(&cur)) return -1;
  trace("set", nv);
  return 0;
}

/* addtag - header line t into list (once): the recipient's pending tags, or the message's */
static int addtag(stralloc *list, const char *t, size_t n)
{
  size_t i = 0;
  while (i < list->len) {
    const char *nl = memchr(list->s + i, '\n', list->len - i);
    if ((size_t)(nl - (list->s + i)) == n && !memcmp(list->s + i, t, n)) return 0;
    i = (size_t)(nl - list->s) + 1;
  }
  if (list->len + n > 4000) return 0;  /* bounded: more tags are dropped */
  if (!stralloc_catb(list, t, n) || !stralloc_cats(list, "\n")) return -1;
  return 0;
}

/* expand - the reply text with %F %T %H %I %U %C %M %%: client strings made printable */
static const char *expand(const char *t)
{
  static stralloc o;
  o.len = 0;
  for (; *t; ++t) {
    const char *v = 0;
    if (*t != '%') { if (!stralloc_catb(&o, t, 1)) return "policy"; continue; }
    switch (*++t) {
      case 'F': v = S->mailfrom.s ? S->mailfrom.s : ""; break;
      case 'T': v = S->rcpt.s ? S->rcpt.s : ""; break;
      case 'H': v = *ptrname() ? ptrname() : "UNKNOWN"; break;
      case 'I': v = S->remoteip; break;
      case 'U': v = "UNKNOWN"; break;
      case 'C': v = ":"; break;
      case 'M': v = matched ? matched : ""; break;
      case '%': v = "%"; break;
      default: return "policy";
    }
    for (; *v && o.len < TEXT_MAX; ++v) {
      char c = (*v >= 32 && *v < 127) ? *v : '?';
      if (!stralloc_catb(&o, &c, 1)) return "policy";
    }
    if (!*t) break;
  }
  if (o.len > TEXT_MAX) o.len = TEXT_MAX;
  if (!stralloc_0(&o)) return "policy";
  return o.s;
}

struct verdict { struct decision d; int done; };

static struct decision trouble(const char *why)
{
  struct decision d = DECISION_NONE;
  d.code = 451; d.esc = "4.3.0"; d.text = "unable to read the policy, try again later";
  d.reason = why;
  d.qmail = 0;
  return d;
}

static void observe(const struct decision *d, const char *origin)
{
  ++nobserved;
  trace("observe", origin);
  if (rules_observer) { rules_observer(d); return; }
  if (!log_on(LOG_INFO)) return;
  log_start("observe");
  {
    char c[FMT_ULONG];
    c[fmt_ulong(c, (unsigned long)d->code)] = 0;
    log_str("would", c);
  }
  if (d->esc) log_str("esc", d->esc);
  log_str("reason", d->reason);
  log_str("ip", S->remoteip);
  if (S->mailfrom.s && S->seenmail) log_addr("from", S->mailfrom.s);
  if (S->rcpt.s && S->rcpt.len) log_addr("to", S->rcpt.s);
  log_end();
}

/* run - evaluate one compiled set for stage st; scope says which set it is */
static int run(const char *set, size_t len, int st, int final, struct verdict *v, int onlyset)
{
  static stralloc reason;
  size_t pos = 0;
  while (pos + 9 < len && !v->done) {
    const unsigned char *h = (const unsigned char *)set + pos;
    size_t rl = (size_t)h[0] | (size_t)h[1] << 8;
    int action = h[2], flags = h[3], stage = h[4], r;
    unsigned code = (unsigned)h[5] | (unsigned)h[6] << 8, delay = (unsigned)h[7] | (unsigned)h[8] << 8;
    const char *c = (const char *)h + 9, *origin, *esc, *text, *args;
    if (rl < 10 || pos + rl > len || set[pos + rl - 1]) return -1;
    pos += rl;
    if (stage > st) continue;
    if (onlyset && action != A_SET && action != A_ALLOW) continue;
    matched = 0;
    r = action == A_ERROR ? 1 : conds(c, &origin);
    if (r == -1) { v->d = trouble("rules_fact"); v->done = 1; return 0; }
    if (!r) {
      if (rules_trace) trace("nomatch", skipconds(c));
      continue;
    }
    if (action == A_ERROR) origin = skipconds(c);
    esc = origin + strlen(origin) + 1;
    text = esc + strlen(esc) + 1;
    args = text + strlen(text) + 1;
    if (flags & FL_GROUP) {  /* the origin of the rule whose value matched */
      const char *o = args + 1 + 2;
      unsigned k = vindex;
      while (k-- && o < set + pos) o += strlen(o) + 1;
      if (o < set + pos) origin = o;
    }
    if (action == A_ERROR) {  /* mxguard-rules named the line; say which set is broken */
      v->d = trouble("rules_broken");
      v->done = 1;
      trace("broken", origin);
      if (log_on(LOG_ERROR)) {
        log_start("error");
        log_str("reason", "rules_broken");
        log_str("rule", origin);
        log_end();
      }
      return 0;
    }
    trace("match", origin);
    switch (action) {
      case A_SET:
        for (c = args; *c; c += strlen(c) + 1) if (setone(c) == -1) return -1;
        continue;
      case A_TAG:
        if (st == STAGE_RCPT && addtag(&curtags, args, strlen(args)) == -1) return -1;
        continue;
      case A_TARPIT:
        if (final) tarpit_ms += delay * 1000;
        continue;
      case A_DEBUG:
        if (log_on(LOG_INFO)) {
          log_start("rule");
          log_str("act", "debug");
          log_str("rule", origin);
          log_str("ip", S->remoteip);
          log_end();
        }
        continue;
    }
    if (!stralloc_copys(&reason, "rule:") || !stralloc_cats(&reason, origin) || !stralloc_0(&reason))
      return -1;
    v->d = DECISION_NONE;
    v->d.code = (int)code;
    v->d.reason = reason.s;
    if (action == A_ALLOW) { v->done = 1; return 0; }
    if (!final && !(action == A_DENY || action == A_DEFER)) continue;
    v->d.esc = *esc ? esc : action == A_DEFER ? "4.7.1" : (flags & FL_OBTUSE) ? 0 : "5.7.1";
    v->d.text = *text ? expand(text) : action == A_DEFER ? "try again later" :
                action == A_NOTO ? expand("sorry, mail to <%T> is refused by policy") :
                "sorry, your mail is refused by policy";
    v->d.drop = (flags & FL_DROP) != 0;
    if (delay) v->d.delay_ms = delay * 1000;
    if ((flags & FL_OBSERVE) || getflag(&observeall, "OBSERVE", 0)) {
      observe(&v->d, origin);
      v->d = DECISION_NONE;
      continue;
    }
    v->done = 1;
    return 0;
  }
  return 0;
}

/* early - a stage before RCPT: the global sets, for settings and (DELAYREJECT=0) verdicts */
static struct decision early(struct session *s, int st)
{
  struct verdict v;
  int r;
  S = s;
  r = load();
  if (r == 0 || (r == 1 && !(used & RULES_EARLY))) return DECISION_NONE;  /* nothing before RCPT */
  cur.len = 0;
  if (r == -1) {
    if (st == STAGE_CONNECT && log_on(LOG_ERROR)) {
      log_start("error");
      log_str("reason", "rules");
      log_str("file", RULES_CDB);
      log_end();
    }
    return DECISION_NONE;  /* answered at RCPT, with the recipient in the log */
  }
  memset(&v, 0, sizeof v);
  {
    int delayed = getflag(&delayreject, "DELAYREJECT", 1);  /* then only allow and set matter */
    struct blob *e = delayed ? eset : gset;  /* E, e: the compiler's extract of those */
    if (run(e[0].s, e[0].len, st, 0, &v, delayed) == -1 ||
        (!v.done && run(e[1].s, e[1].len, st, 0, &v, delayed) == -1))
      return trouble("rules_nomem");
  }
  if (!v.done || getflag(&delayreject, "DELAYREJECT", 1)) {
    if (v.done && v.d.code == 250) return v.d;
    return DECISION_NONE;
  }
  return v.d;
}

void rules_start(struct session *s)
{
  S = s;
  if (load() == 1) {
    unsigned w = used, ptr = (1u << F_PTR) | (1u << F_RDNS) | (1u << F_DYNAMIC) | (1u << F_OSRC) |
                            (1u << F_HELOCLASS);
    if (!(w & (ptr | (1u << F_FCRDNS))) || getenv("MXG_OFFLINE")) return;  /* explain --offline */
    dnsbl_want(w & (1u << F_FCRDNS) ? 2 : 1);
  }
}

struct decision rules_connect(struct session *s) { return early(s, STAGE_CONNECT); }

struct decision rules_helo(struct session *s)
{
  invalidate(F_HELO, F_OTO);
  return early(s, STAGE_HELO);
}

struct decision rules_mail(struct session *s)
{
  invalidate(F_AUTH, F_OTO);
  return early(s, STAGE_MAIL);
}

/* userset - the user's rules: user-ext@d, then user-ext-default@d ... user-default@d, then
 * user@d (qmail-local's .qmail-ext / .qmail-default order); 1 found, 0 none, -1 error */
static int userset(const char *a, size_t len, struct blob *out)
{
  static stralloc k, t;
  const char *at;
  size_t llen, i;
  int r;
  if (!memchr(a, '@', len)) return 0;
  for (at = a + len; *--at != '@';) ;
  llen = (size_t)(at - a);
  if (!stralloc_copys(&k, "U") || !stralloc_catb(&k, a, len) || !stralloc_0(&k)) return -1;
  --k.len;  /* NUL-terminated for the trace, not part of the key */
  for (i = 1; i < k.len; ++i) if (k.s[i] >= 'A' && k.s[i] <= 'Z') k.s[i] += 32;
  if ((r = cdbget(k.s, k.len, out))) { trace("userset", k.s + 1); return r; }
  for (i = llen; i-- > 0;) {
    if (k.s[1 + i] != '-') continue;
    if (!stralloc_copyb(&t, k.s, 1 + i) || !stralloc_cats(&t, "-default") ||
        !stralloc_catb(&t, k.s + 1 + llen, k.len - 1 - llen))
      return -1;
    if ((r = cdbget(t.s, t.len, out))) { trace("userset", "default"); return r; }
  }
  i = 0;
  while (i < llen && k.s[1 + i] != '-') ++i;
  if (i < llen) {
    if (!stralloc_copyb(&t, k.s, 1 + i) || !stralloc_catb(&t, k.s + 1 + llen, k.len - 1 - llen))
      return -1;
    if ((r = cdbget(t.s, t.len, out))) { trace("userset", "base"); return r; }
  }
  return 0;
}

struct decision rules_rcpt(struct session *s)
{
  static struct blob us, ds;
  static stralloc k;
  struct verdict v;
  int r;
  S = s;
  cur.len = 0;
  curtags.len = 0;
  tarpit_ms = 0;
  r = load();
  if (r == 0) return DECISION_NONE;
  if (r == -1) return trouble("rules_unreadable");
  invalidate(F_TO, F_OTO);
  invalidate(F_AUTH, F_TLS);
  invalidate(F_CERT, F_CERT);
  memset(&v, 0, sizeof v);
  if (run(gset[0].s, gset[0].len, STAGE_RCPT, 1, &v, 0) == -1) return trouble("rules_nomem");
  if (!v.done) {
    r = userset(s->rcpt.s, s->rcpt.len, &us);
    if (r == -1) return trouble("rules_unreadable");
    if (r == 1 && run(us.s, us.len, STAGE_RCPT, 1, &v, 0) == -1) return trouble("rules_nomem");
  }
  if (!v.done) {
    const char *dom = addr_domain(s->rcpt.s, s->rcpt.len);
    if (dom) {
      size_t i;
      if (!stralloc_copys(&k, "D") || !stralloc_catb(&k, dom, s->rcpt.len - (size_t)(dom - s->rcpt.s)))
        return trouble("rules_nomem");
      for (i = 1; i < k.len; ++i) if (k.s[i] >= 'A' && k.s[i] <= 'Z') k.s[i] += 32;
      r = cdbget(k.s, k.len, &ds);
      if (r == -1) return trouble("rules_unreadable");
      if (r == 1 && run(ds.s, ds.len, STAGE_RCPT, 1, &v, 0) == -1) return trouble("rules_nomem");
    }
  }
  if (!v.done && run(gset[1].s, gset[1].len, STAGE_RCPT, 1, &v, 0) == -1) return trouble("rules_nomem");
  if (!v.done) {
    struct decision d = DECISION_NONE;
    d.delay_ms = tarpit_ms;
    return d;
  }
  if (v.d.code == 250) v.d.delay_ms = tarpit_ms;
  else if (!v.d.delay_ms) v.d.delay_ms = tarpit_ms;
  return v.d;
}

void rules_accepted(void)
{
  size_t i = 0;
  while (i < curtags.len) {  /* a refused recipient's tags never reach the message */
    const char *nl = memchr(curtags.s + i, '\n', curtags.len - i);
    addtag(&tags, curtags.s + i, (size_t)(nl - (curtags.s + i)));
    i = (size_t)(nl - curtags.s) + 1;
  }
  curtags.len = 0;
  if (naccepted >= RCPT_MAX) return;
  if (!stralloc_catb(&acc, cur.s, cur.len)) return;
  accoff[++naccepted] = (unsigned)acc.len;
}

void rules_newmail(void)
{
  atdata = 0;
  naccepted = 0;
  acc.len = 0;
  accoff[0] = 0;
  tags.len = 0;
}

const char *rules_tags(void)
{
  if (!tags.len || !stralloc_0(&tags)) return 0;
  --tags.len;
  return tags.s;
}

unsigned rules_observed(void) { return nobserved; }

/* ---- rules_dump: a compiled set as text */

int rules_dump(stralloc *out, const char *set, size_t len)
{
  static const char *const an[] = {"?", "allow", "deny", "noto", "defer", "tarpit", "tag", "set", "debug", "error"};
  size_t pos = 0;
  while (pos + 9 < len) {
    const unsigned char *h = (const unsigned char *)set + pos;
    size_t rl = (size_t)h[0] | (size_t)h[1] << 8;
    const char *p = set + pos + 9, *origin, *esc, *text, *a;
    char n[FMT_ULONG];
    if (rl < 10 || pos + rl > len || set[pos + rl - 1]) return -1;
    origin = skipconds(p);
    esc = origin + strlen(origin) + 1;
    text = esc + strlen(esc) + 1;
    if (h[3] & FL_GROUP) {  /* one line per merged rule, as it was written */
      const struct fact *f = factbyid((unsigned char)p[0]);
      const char *v = p + 2, *o = text + strlen(text) + 2 + 2;
      static stralloc one;
      while (*v) {
        size_t start = out->len;
        one.len = 0;
        /* a single-value rule: header, the condition with this value, the strings */
        if (!stralloc_catb(&one, (const char *)h, 9) || !stralloc_catb(&one, p, 2) ||
            !stralloc_catb(&one, v, (size_t)(skipvalue(v) - v)) || !stralloc_0(&one) || !stralloc_0(&one) ||
            !stralloc_catb(&one, o, strlen(o) + 1) || !stralloc_catb(&one, esc, strlen(esc) + 1) ||
            !stralloc_catb(&one, text, strlen(text) + 1) || !stralloc_0(&one))
          return -1;
        one.s[3] &= (char)~FL_GROUP;
        one.s[0] = (char)(one.len & 255);
        one.s[1] = (char)(one.len >> 8);
        if (rules_dump(out, one.s, one.len) == -1) return -1;
        (void)start;
        (void)f;
        v = skipvalue(v);
        o += strlen(o) + 1;
      }
      pos += rl;
      continue;
    }
    if (!stralloc_cats(out, origin) || !stralloc_cats(out, ": ")) return -1;
    if ((h[3] & FL_OBSERVE) && !stralloc_cats(out, "observe ")) return -1;
    if ((h[3] & FL_MANDATORY) && !stralloc_cats(out, "mandatory ")) return -1;
    if (!stralloc_cats(out, h[2] <= A_ERROR ? an[h[2]] : "?")) return -1;
    if (h[2] == A_TARPIT) {
      n[fmt_ulong(n, (unsigned long)(h[7] | h[8] << 8))] = 0;
      if (!stralloc_cats(out, " ") || !stralloc_cats(out, n)) return -1;
    }
    for (a = text + strlen(text) + 1; *a; a += strlen(a) + 1)
      if (!stralloc_cats(out, " ") || !stralloc_cats(out, a)) return -1;
    while (*p) {
      const struct fact *f = factbyid((unsigned char)*p);
      int op = p[1], first = 1;
      p += 2;
      if (!stralloc_cats(out, " ") || !stralloc_cats(out, f ? f->name : "?")) return -1;
      if (f && f->id == F_ENV) {
        if (!stralloc_cats(out, ".") || !stralloc_cats(out, p)) return -1;
        p += strlen(p) + 1;
      }
      if (!stralloc_cats(out, op == '!' ? "!=" : op == 'l' ? "<=" : op == 'G' ? ">=" : op == '<' ? "<" : op == '>' ? ">" : "="))
        return -1;
      while (*p) {
        if (!first && !stralloc_cats(out, ",")) return -1;
        first = 0;
        switch (*p) {
          case 'g': if (!stralloc_cats(out, p + 1)) return -1; break;
          case 'e': case 's': case 'p':
            if ((*p == 's' && !stralloc_cats(out, "*")) ||
                !stralloc_catb(out, p + 2, (unsigned char)p[1]) || (*p == 'p' && !stralloc_cats(out, "*")))
              return -1;
            break;
          case 'r': if (!stralloc_cats(out, "/regex/")) return -1; break;
          case 'c': {
            char buf[64];
            if (!inet_ntop(p[1] == 4 ? AF_INET : AF_INET6, p + 3, buf, sizeof buf)) return -1;
            n[fmt_ulong(n, (unsigned long)(unsigned char)p[2])] = 0;
            if (!stralloc_cats(out, buf) || !stralloc_cats(out, "/") || !stralloc_cats(out, n)) return -1;
            break;
          }
          case 'a':
            if (!stralloc_cats(out, p + 1) || !stralloc_cats(out, "@") ||
                !stralloc_cats(out, p + 2 + strlen(p + 1)))
              return -1;
            break;
          case 'k': if (!stralloc_cats(out, p[1] == 'K' ? "KNOWN" : p[1] == 'U' ? "UNKNOWN" : "IDENT")) return -1; break;
          case 'b': if (!stralloc_cats(out, "RBL.") || !stralloc_cats(out, p + 1)) return -1; break;
          case 'x': if (!stralloc_cats(out, "EXCEPT")) return -1; first = 1; break;
          default: return -1;
        }
        p = *p == 'x' ? p + 1 : skipvalue(p);
      }
      ++p;
    }
    if (*text) {
      n[fmt_ulong(n, (unsigned long)(h[5] | h[6] << 8))] = 0;
      if (!stralloc_cats(out, " \"") || !stralloc_cats(out, n) || !stralloc_cats(out, " ") ||
          (*esc && (!stralloc_cats(out, esc) || !stralloc_cats(out, " "))) ||
          !stralloc_cats(out, text) || !stralloc_cats(out, "\""))
        return -1;
    }
    if (!stralloc_cats(out, "\n")) return -1;
    pos += rl;
  }
  return 0;
}

/* ---- helpers for the compiler */

int rules_error_rule(stralloc *out, const char *origin)
{
  struct rule r;
  const char *err;
  memset(&r, 0, sizeof r);
  r.action = A_ERROR;
  r.origin = origin;
  r.code = 451;
  return emit(out, &r, &err);
}

unsigned rules_facts_used(const char *set, size_t len)
{
  unsigned bits = 0;
  size_t pos = 0;
  while (pos + 9 < len) {
    const unsigned char *h = (const unsigned char *)set + pos;
    size_t rl = (size_t)h[0] | (size_t)h[1] << 8;
    const char *p = set + pos + 9;
    if (rl < 10 || pos + rl > len) break;
    if (h[4] < STAGE_RCPT) bits |= RULES_EARLY;
    while (*p) {  /* conditions */
      int id = (unsigned char)*p;
      bits |= 1u << id;
      p += 2;
      if (id == F_ENV) p += strlen(p) + 1;
      while (*p) {
        if (*p == 'b') bits |= 1u << F_DNSBL;
        if (*p == 'k') bits |= 1u << F_PTR;
        p = *p == 'x' ? p + 1 : skipvalue(p);
      }
      ++p;
    }
    pos += rl;
  }
  return bits;
}

/* ---- the optimiser: consecutive rules that differ only in the values of their single
 * condition become one rule with all the values (a list of 100 networks costs one pass,
 * not 100 rule headers); each value keeps its rule's origin for the log. */

struct parsed {
  const unsigned char *h;
  size_t len;
  const char *conds, *condend, *origin, *esc, *text, *args, *end;
};

static void dissect(const char *r, size_t len, struct parsed *p)
{
  p->h = (const unsigned char *)r;
  p->len = len;
  p->conds = r + 9;
  p->origin = skipconds(p->conds);
  p->condend = p->origin;
  p->esc = p->origin + strlen(p->origin) + 1;
  p->text = p->esc + strlen(p->esc) + 1;
  p->args = p->text + strlen(p->text) + 1;
  p->end = r + len;
}

/* groupable - one condition, op '=', no EXCEPT, not env, a terminal action, not observed */
static int groupable(const struct parsed *p)
{
  const char *c = p->conds, *v;
  if (p->h[2] < A_ALLOW || p->h[2] > A_DEFER || (p->h[3] & (FL_OBSERVE | FL_GROUP))) return 0;
  if (!*c || c[1] != '=' || (unsigned char)c[0] == F_ENV) return 0;
  for (v = c + 2; *v; v = skipvalue(v)) if (*v == 'x') return 0;
  return !v[1] && *p->args == 0;  /* exactly one condition; no args */
}

static int samegroup(const struct parsed *a, const struct parsed *b)
{
  return !memcmp(a->h + 2, b->h + 2, 7) && a->conds[0] == b->conds[0] &&
         !strcmp(a->esc, b->esc) && !strcmp(a->text, b->text);
}

int rules_optimize(stralloc *set)
{
  static stralloc out, conds, origins;
  size_t pos = 0;
  out.len = 0;
  while (pos + 9 < set->len) {
    struct parsed a, b;
    size_t rl = (size_t)(unsigned char)set->s[pos] | (size_t)(unsigned char)set->s[pos + 1] << 8, next, n = 1;
    if (rl < 10 || pos + rl > set->len) return -1;
    dissect(set->s + pos, rl, &a);
    next = pos + rl;
    if (groupable(&a)) {
      conds.len = origins.len = 0;
      {
        const char *v;
        for (v = a.conds + 2; *v; v = skipvalue(v))
          if (!stralloc_catb(&origins, a.origin, strlen(a.origin) + 1)) return -1;
        if (!stralloc_catb(&conds, a.conds + 2, (size_t)(v - (a.conds + 2)))) return -1;
      }
      while (next + 9 < set->len) {
        size_t l2 = (size_t)(unsigned char)set->s[next] | (size_t)(unsigned char)set->s[next + 1] << 8;
        const char *v;
        if (l2 < 10 || next + l2 > set->len) return -1;
        dissect(set->s + next, l2, &b);
        if (!groupable(&b) || !samegroup(&a, &b) || conds.len + origins.len + l2 > 60000) break;
        for (v = b.conds + 2; *v; v = skipvalue(v))
          if (!stralloc_catb(&origins, b.origin, strlen(b.origin) + 1)) return -1;
        if (!stralloc_catb(&conds, b.conds + 2, (size_t)(v - (b.conds + 2)))) return -1;
        next += l2;
        ++n;
      }
    }
    if (n == 1) {
      if (!stralloc_catb(&out, set->s + pos, rl)) return -1;
    } else {
      size_t start = out.len, count = 0, i;
      unsigned char h[9];
      memcpy(h, a.h, 9);
      h[3] |= FL_GROUP;
      for (i = 0; i < origins.len; i += strlen(origins.s + i) + 1) ++count;
      {
        char cnt[2] = {(char)(count & 255), (char)(count >> 8)};
        if (!stralloc_catb(&out, (char *)h, 9) || !stralloc_catb(&out, a.conds, 2) ||
            !stralloc_cat(&out, &conds) || !stralloc_0(&out) || !stralloc_0(&out) ||
            !stralloc_catb(&out, a.origin, strlen(a.origin) + 1) ||
            !stralloc_catb(&out, a.esc, strlen(a.esc) + 1) ||
            !stralloc_catb(&out, a.text, strlen(a.text) + 1) || !stralloc_0(&out) ||
            !stralloc_catb(&out, cnt, 2) || !stralloc_cat(&out, &origins) || !stralloc_0(&out))
          return -1;
      }
      if (out.len - start > 65535) return -1;
      out.s[start] = (char)((out.len - start) & 255);
      out.s[start + 1] = (char)((out.len - start) >> 8);
    }
    pos = next;
  }
  return stralloc_copy(set, &out) ? 0 : -1;
}

/* rules_early - the rules that matter before RCPT while refusals wait for it: allow and set
 * rules (and broken-set markers) whose facts are known by then */
int rules_early(const char *set, size_t len, stralloc *out)
{
  size_t pos = 0;
  out->len = 0;
  while (pos + 9 < len) {
    const unsigned char *h = (const unsigned char *)set + pos;
    size_t rl = (size_t)h[0] | (size_t)h[1] << 8;
    if (rl < 10 || pos + rl > len) return -1;
    if (h[4] < STAGE_RCPT && (h[2] == A_SET || h[2] == A_ALLOW || h[2] == A_ERROR) &&
        !stralloc_catb(out, set + pos, rl))
      return -1;
    pos += rl;
  }
  return 0;
}
