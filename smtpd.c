/* smtpd.c - mxguard-smtpd, a drop-in for qmail-smtpd: started by tcpserver or tcpsvd once per
 * connection with the client on fd 0/1 and the log on fd 2. It owns the session, the command
 * table and the SMTP state machine; it asks the checks (the table below) for a decision at
 * each stage and answers every reply through reply(), which also logs. With no new
 * configuration every reply, state rule and header is qmail-smtpd's (notqmail texts).
 * Differences, each a bound qmail lacks: command lines over SMTP_LINE_MAX bytes get 500 and
 * LONGLINES_MAX of them end the session; more than RCPT_MAX recipients get 452.
 * argv: nothing, or the AUTH forms "hostname checkpassword prog..." / "checkpassword prog...",
 * kept for the AUTH module. Exit status: 0 after QUIT, 1 otherwise. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
#include <buffer.h>
#include <case.h>
#include <fmt.h>
#include <stralloc.h>
#include "addr.h"
#include "auth.h"
#include "content.h"
#include "control.h"
#include "data.h"
#include "decision.h"
#include "dnsbl.h"
#include "instruct.h"
#include "io.h"
#include "log.h"
#include "queue.h"
#include "rules.h"
#include "session.h"
#include "stock.h"
#include "switches.h"
#include "tarpit.h"
#include "handoff.h"
#include "tls.h"
#include "version.h"
#include "valuser.h"

#define SMTP_LINE_MAX 2048  /* bytes before the LF; Postfix's line_length_limit */
#define LONGLINES_MAX 3     /* too-long command lines before the session is dropped */
#define REASONS_MAX 8       /* distinct refusal reasons counted for the summary line */
#define DATAGRACE_DEF 300   /* seconds of DATA before DATAMINRATE applies */
#define DATAMINRATE_DEF 100 /* bytes/s averaged over DATA after the grace: 800 bit/s */

static struct session s;
static stralloc greeting, liphost, me;
static int keep421;  /* 550GREETING/421GREETING: a 421 to HELO does not end the session */
static int liphostok;
static struct qq qq;
static char line[SMTP_LINE_MAX + 1];
static const char *curcmd = "CONNECT";
static int parsed;  /* s.rcpt holds this command's address */
static unsigned longlines;
static int ending;
static const char *auth_host;  /* argv of the AUTH forms, for auth.c */
static char **auth_argv;
static const char *tls_client;           /* a verified client certificate's e-mail */
static const char *tls_client_why = "none";
static struct { const char *reason; unsigned long n; } reasons[REASONS_MAX];
static unsigned long nobserved;

/* the checks, in the order they run at each stage; the first opinion wins.
 * CHECK_POLICY: a policy refusal (DNSBL, badmailfrom, rules, switches, greylisting, content),
 * which a rule's "allow" skips and observe mode turns into a log line. The others (relay,
 * recipient existence, bounds, loops) are never skipped nor observed: skipping them would
 * open the relay or accept mail that must bounce later. */
enum { CHECK_HARD = 0, CHECK_POLICY = 1 };
struct check {
  const char *name;
  enum stage stage;
  struct decision (*fn)(struct session *);
  int kind;
};
static const struct check checks[] = {
  {"rules", STAGE_CONNECT, rules_connect, CHECK_POLICY},
  {"rules", STAGE_HELO, rules_helo, CHECK_POLICY},
  {"rules", STAGE_MAIL, rules_mail, CHECK_POLICY},
  {"rcptmax", STAGE_RCPT, stock_rcptmax, CHECK_HARD},
  {"rules", STAGE_RCPT, rules_rcpt, CHECK_POLICY},
  /* qmail-ldap and sagredo switches (switches.c), at the stage their code answers */
  {"greeting", STAGE_CONNECT, switches_greetcheck, CHECK_POLICY},  /* 550GREETING, 421GREETING */
  {"transaction", STAGE_MAIL, switches_txn, CHECK_HARD},
  {"rejectnullsenders", STAGE_MAIL, switches_nullsenders, CHECK_POLICY},
  {"badmailfrom-unknown", STAGE_MAIL, switches_bmfunknown, CHECK_POLICY},
  {"nobounce", STAGE_MAIL, switches_nobounce, CHECK_POLICY},
  {"sanitycheck", STAGE_MAIL, switches_sanity, CHECK_POLICY},
  {"rbl", STAGE_MAIL, switches_rbl, CHECK_POLICY},
  {"relayprobe", STAGE_RCPT, switches_relayprobe, CHECK_POLICY},
  {"badhelo", STAGE_RCPT, switches_badhelo, CHECK_POLICY},
  {"badmailfrom", STAGE_RCPT, switches_badmailfrom, CHECK_POLICY},  /* stock, or QREGEX */
  {"brtlimit", STAGE_RCPT, switches_brtlimit, CHECK_POLICY},
  {"badrcptto", STAGE_RCPT, switches_badrcptto, CHECK_POLICY},
  {"rcpthosts", STAGE_RCPT, stock_rcpthosts, CHECK_HARD},
  {"badbounce", STAGE_RCPT, switches_badbounce, CHECK_POLICY},
  {"maxrcptcount", STAGE_RCPT, tarpit_rcptmax, CHECK_HARD},
  {"rates", STAGE_RCPT, tarpit_rates, CHECK_POLICY},
  {"msgrate", STAGE_MAIL, tarpit_mail, CHECK_POLICY},
  {"dnsbl_mail", STAGE_MAIL, dnsbl_mail, CHECK_POLICY},
  {"returnmxcheck", STAGE_MAIL, switches_returnmx, CHECK_POLICY},
  {"sendercheck", STAGE_MAIL, switches_sendercheck, CHECK_POLICY},
  {"dnsbl", STAGE_RCPT, dnsbl_rcpt, CHECK_POLICY},
  {"valuser", STAGE_RCPT, switches_valuser, CHECK_HARD},  /* goodmailaddr, then valuser */
  {"dnsbllist", STAGE_RCPT, switches_dnsbllist, CHECK_POLICY},
  {"greylist", STAGE_RCPT, tarpit_greylist, CHECK_POLICY},
  {"hops", STAGE_DATA_END, stock_hops, CHECK_HARD},
  {"databytes", STAGE_DATA_END, stock_databytes, CHECK_HARD},
  {"contentclass", STAGE_RCPT, content_rcpt, CHECK_POLICY},
  {"content", STAGE_DATA_END, content_check, CHECK_POLICY},
};

static void observe(const struct decision *d, const char *check);
static void trace(const char *what, const char *detail);
static int observeall = -1;

/* run_checks - the checks of stage st in order. A 250 (a rule's allow) skips the later policy
 * checks of this command; OBSERVE=1 turns a policy refusal into a log line; waits asked for
 * by checks that had no objection (tarpits) are added up into the answer's delay_ms */
static struct decision run_checks(enum stage st)
{
  size_t i;
  int allow = 0;
  unsigned delay = 0;
  struct decision none = DECISION_NONE;
  for (i = 0; i < sizeof checks / sizeof checks[0]; ++i) {
    struct decision d;
    if (checks[i].stage != st || (allow && checks[i].kind == CHECK_POLICY)) continue;
    d = checks[i].fn(&s);
    if (rules_trace) {
      char c[FMT_ULONG];
      c[fmt_ulong(c, (unsigned long)d.code)] = 0;
      trace(checks[i].name, d.code ? (d.reason ? d.reason : c) : "no opinion");
    }
    if (d.code == 250) { allow = 1; delay += d.delay_ms; continue; }
    if (!d.code) { delay += d.delay_ms; continue; }
    if (observeall < 0) {  /* read at the first refusal: a clean session pays nothing */
      const char *x = getenv("OBSERVE");
      observeall = x && *x && strcmp(x, "0");
    }
    if (observeall && checks[i].kind == CHECK_POLICY &&
        !(d.reason && !strncmp(d.reason, "rules_", 6))) {  /* our own trouble stays a 451 */
      observe(&d, checks[i].name);
      continue;
    }
    d.delay_ms += delay;
    return d;
  }
  none.delay_ms = delay;
  return none;
}

static void out(const char *x) { buffer_puts(&io_out, x); }

static void count_reason(const char *why)
{
  int i;
  if (!why) return;
  for (i = 0; i < REASONS_MAX && reasons[i].reason; ++i)
    if (!strcmp(reasons[i].reason, why)) break;
  if (i == REASONS_MAX) return;
  reasons[i].reason = why;
  ++reasons[i].n;
}

/* end_session - the summary line, then exit; status 0 only after QUIT */
static void end_session(int status, const char *why)
{
  int i;
  if (!ending) {
    ending = 1;
    buffer_flush(&io_out);
  }
  tarpit_end();
  if (log_on(LOG_INFO)) {
    log_start("end");
    log_str("status", why);
    log_str("ip", s.remoteip ? s.remoteip : "unknown");
    log_ulong("ms", (unsigned long)(io_now_ms() - s.start_ms));
    log_ulong("msgs", s.nmsg);
    log_ulong("bytes", s.nbytes);
    log_ulong("rcpt_ok", s.rcpt_ok);
    log_ulong("rcpt_bad", s.rcpt_bad);
    log_ulong("errors", s.nerrors);
    if (s.tls) log_str("tls", s.tls);
    if (s.auth_user) log_clients("auth", s.auth_user);
    if (nobserved) log_ulong("observed", nobserved);
    if (reasons[0].reason) {
      char num[FMT_ULONG];
      stralloc sa = {0};
      for (i = 0; i < REASONS_MAX && reasons[i].reason; ++i) {
        if (i) stralloc_cats(&sa, ",");
        stralloc_cats(&sa, reasons[i].reason);
        stralloc_cats(&sa, ":");
        stralloc_catb(&sa, num, fmt_ulong(num, reasons[i].n));
      }
      if (stralloc_0(&sa)) log_str("reasons", sa.s);
    }
    log_end();
  }
  _exit(status);
}

static void die_write(int why) { (void)why; ending = 1; end_session(1, "write_error"); }

/* log_context - who and what a refusal was about: only addresses of this transaction */
static void log_context(void)
{
  int mail = !strcmp(curcmd, "MAIL");
  log_str("ip", s.remoteip);
  if (s.helo.len) log_clients("helo", s.helo.s);
  if (mail && parsed) log_addr("from", s.rcpt.s);
  if (!mail && s.mailfrom.s && (s.seenmail || !strcmp(curcmd, "DATA")))
    log_addr("from", s.mailfrom.s);
  if (!strcmp(curcmd, "RCPT") && parsed) log_addr("to", s.rcpt.s);
  if (!strcmp(curcmd, "DATA")) log_ulong("nrcpt", s.nrcpt);
}

/* observe - a refusal not sent (OBSERVE=1): logged and counted as "~reason" */
static void observe(const struct decision *d, const char *check)
{
  static stralloc r[REASONS_MAX];
  static int nr;
  int i;
  const char *why = d->reason ? d->reason : check;
  ++nobserved;
  for (i = 0; i < nr; ++i) if (!strcmp(r[i].s + 1, why)) break;
  if (i == nr && nr < REASONS_MAX) {
    if (!stralloc_copys(&r[nr], "~") || !stralloc_cats(&r[nr], why) || !stralloc_0(&r[nr])) return;
    ++nr;
  }
  if (i < nr) count_reason(r[i].s);
  if (!log_on(LOG_INFO)) return;
  {
    char code[FMT_ULONG];
    code[fmt_ulong(code, (unsigned long)d->code)] = 0;
    log_start("observe");
    log_str("cmd", curcmd);
    log_str("would", code);
    if (d->esc) log_str("esc", d->esc);
    log_str("reason", why);
    log_context();
    log_end();
  }
}

static void observe_rule(const struct decision *d) { observe(d, "rules"); }

/* trace - explain's view (MXG_TRACE): every check and rule as it is evaluated */
static void trace(const char *what, const char *detail)
{
  log_start("trace");
  log_str("cmd", curcmd);
  log_str("what", what);
  if (detail) log_clients("detail", detail);
  log_end();
}

/* textesc - the enhanced status code a qmail text carries at its end, "... (#4.3.0)", for
 * the log of replies made without d->esc (qmail-queue's, rblsmtpd's, greetings) */
static int textesc(const char *t, char *out)
{
  const char *h = strstr(t, "(#");
  size_t n;
  if (!h) return 0;
  h += 2;
  n = strspn(h, "0123456789.");
  if (n < 5 || n > 11 || h[n] != ')' || (*h != '2' && *h != '4' && *h != '5')) return 0;
  memcpy(out, h, n);
  out[n] = 0;
  return 1;
}

/* reply - the one way a reply reaches the client: writes it (text may hold several lines
 * separated by \n), logs it, counts it, and ends the session for 421 or drop */
static void reply(const struct decision *d)
{
  char code[FMT_ULONG], escbuf[16];
  const char *t = d->text ? d->text : "", *t0 = t;
  code[fmt_ulong(code, (unsigned long)d->code)] = 0;
  if (d->delay_ms) tarpit_sleep(d->delay_ms);  /* budget spent: the refusal comes at once */
  for (;;) {
    const char *nl = strchr(t, '\n');
    out(code);
    out(nl ? "-" : " ");
    if (d->esc && !d->qmail) { out(d->esc); out(" "); }
    buffer_put(&io_out, t, nl ? (size_t)(nl - t) : strlen(t));
    if (!nl) break;
    out("\r\n");
    t = nl + 1;
  }
  if (d->esc && d->qmail) { out(" (#"); out(d->esc); out(")"); }
  out("\r\n");
  if (d->code >= 400) {
    ++s.nerrors;
    count_reason(d->reason);
    if (log_on(LOG_INFO)) {
      log_start(d->code >= 500 ? "reject" : "defer");
      log_str("cmd", curcmd);
      log_str("code", code);
      if (d->esc) log_str("esc", d->esc);
      else if (textesc(t0, escbuf)) log_str("esc", escbuf);
      else if (d->reason && !strcmp(d->reason, "rblsmtpd"))  /* rblsmtpd's text has none */
        log_str("esc", d->code >= 500 ? "5.7.1" : "4.7.1");
      else
        log_str("esc", d->code >= 500 ? "5.0.0" : "4.0.0");
      if (d->reason) log_str("reason", d->reason);
      log_context();
      log_end();
    }
  } else if (log_on(LOG_REPLY)) {
    log_start("reply");
    log_str("cmd", curcmd);
    log_str("code", code);
    log_end();
  }
  if (d->drop || (d->code == 421 && !keep421) || (d->code >= 400 && switches_disconnect()))
    end_session(1, d->reason ? d->reason : "dropped");  /* SMTP550DISCONNECT: after any refusal */
  if (d->code >= 400 && !keep421 && tarpit_errors(&s)) {
    struct decision e = DECISION_NONE;
    e.code = 421; e.esc = "4.7.0"; e.text = "too many errors, closing connection";
    e.reason = "maxerrors";
    reply(&e);
  }
}

static void say(int code, const char *text)
{
  struct decision d = DECISION_NONE;
  d.code = code;
  d.text = text;
  reply(&d);
}

static void say_qmail(int code, const char *text, const char *esc, const char *why, int drop)
{
  struct decision d = DECISION_NONE;
  d.code = code; d.text = text; d.esc = esc; d.qmail = 1; d.reason = why; d.drop = (unsigned char)drop;
  reply(&d);
}

static void die_nomem(void) { say_qmail(421, "out of memory", "4.3.0", "nomem", 1); }
static void die_control(const char *file)
{
  if (log_on(LOG_ERROR)) {
    log_start("error");
    log_str("reason", "control");
    log_str("file", file);
    log_end();
  }
  say_qmail(421, "unable to read controls", "4.3.0", "control", 1);
}
static void die_ipme(void) { say_qmail(421, "unable to figure out my IP addresses", "4.3.0", "ipme", 1); }
/* die_alarm - idle past timeoutsmtpd ("timeout"), or too slow for a total deadline: a command
 * line or AUTH exchange not complete within timeoutsmtpd, DATA under DATAMINRATE */
static void die_alarm(void)
{
  int k = io_expired();
  io_deadline(0);  /* the last reply gets the ordinary write timeout */
  io_rate(0, 0);
  say_qmail(451, "timeout", "4.4.2",
            k == IO_EXP_RATE ? "slowdata" : k == IO_EXP_TOTAL ? "slowclient" : "timeout", 1);
}
static long timeout_ms = 1200000;  /* control/timeoutsmtpd, for the total deadlines */
static void die_read(void) { end_session(1, "eof"); }
static void die_lifetime(void)  /* MAXSESSIONTIME, from io.c's poll loop */
{
  struct decision d = DECISION_NONE;
  d.code = 421; d.esc = "4.4.2"; d.text = "session time limit exceeded, closing connection";
  d.reason = "lifetime";
  reply(&d);
}
static void die_barelf(void)
{
  say_qmail(451, "See https://cr.yp.to/docs/smtplf.html.", 0, "barelf", 1);
}

/* greet - a reply made of control/smtpgreeting (or me) and a tail */
static void greet_why(int code, const char *tail, const char *why)
{
  static stralloc t;
  struct decision d = DECISION_NONE;
  if (!stralloc_copy(&t, &greeting) || !stralloc_cats(&t, tail) || !stralloc_0(&t)) die_nomem();
  d.code = code;
  d.text = t.s;
  d.reason = why;
  reply(&d);
}

static void greet(int code, const char *tail) { greet_why(code, tail, 0); }

static void dohelo(const char *arg)
{
  if (!stralloc_copys(&s.helo, arg) || !stralloc_0(&s.helo)) die_nomem();
  --s.helo.len;
  s.fakehelo = case_diffs(s.remotehost, s.helo.s) != 0;
}

/* parse - the address in arg into s.rcpt; 0 when too long (555) */
static int parse(const char *arg)
{
  switch (addr_parse(&s.rcpt, arg, liphostok ? &liphost : 0)) {
    case ADDR_OK: parsed = 1; return 1;
    case ADDR_TOOLONG: return 0;
    case ADDR_NOIPME: die_ipme(); break;
    default: die_nomem();
  }
  return 0;
}

static void err_syntax(void) { say_qmail(555, "syntax error", "5.5.4", "syntax", 0); }
static void err_wantmail(void) { say_qmail(503, "MAIL first", "5.5.1", "order", 0); }

/* helo_refused - the HELO-stage checks (rules with DELAYREJECT=0): 1 when refused */
static int helo_refused(const char *arg)
{
  struct decision d;
  dohelo(arg);
  d = run_checks(STAGE_HELO);
  if (d.code < 400) { if (d.delay_ms) io_wait((long)d.delay_ms, 0); return 0; }
  reply(&d);
  return 1;
}

static void smtp_helo(const char *arg)
{
  if (helo_refused(arg)) return;
  greet(250, "");
  s.seenmail = 0;
  s.needhelo = 0;
  s.esmtp = 0;
}

/* auth_offer - AUTH is offered and allowed: configured, and not plaintext while TLS could
 * be had (sagredo's FORCETLS, default on; FORCETLS=0 allows AUTH without TLS) */
static int auth_offer(void)
{
  const char *x = getenv("FORCETLS");
  if (!auth_enabled() || s.auth_user) return 0;
  if (auth_tls_required() && !starttls_active()) return 0;  /* qmail-ldap's TLSREQUIRED */
  if (starttls_active() || (x && !strcmp(x, "0"))) return 1;
  return !starttls_wanted();
}

static void smtp_ehlo(const char *arg)
{
  static stralloc ext;
  if (!stralloc_copys(&ext, starttls_offer() ? "\nSTARTTLS" : "") ||
      !stralloc_cats(&ext, "\nPIPELINING\n8BITMIME"))
    die_nomem();
  if (auth_offer()) {
    if (!stralloc_cats(&ext, "\n") || !stralloc_cats(&ext, auth_ehlo(0))) die_nomem();
    if (auth_host && (!stralloc_cats(&ext, "\n") || !stralloc_cats(&ext, auth_ehlo(1))))
      die_nomem();
  }
  if (!stralloc_0(&ext)) die_nomem();
  if (helo_refused(arg)) return;
  greet(250, ext.s);
  s.seenmail = 0;
  s.esmtp = 1;
  s.needhelo = 0;
}

static void smtp_rset(const char *arg) { (void)arg; s.seenmail = 0; say(250, "flushed"); }
static void smtp_noop(const char *arg) { (void)arg; say(250, "ok"); }
static void smtp_vrfy(const char *arg) { (void)arg; say(252, "send some mail, i'll try my best"); }
static void smtp_help(const char *arg)
{
  (void)arg;
  say(214, "notqmail home page: https://notqmail.org");
}
static void smtp_unimpl(const char *arg)
{
  (void)arg;
  say_qmail(502, "unimplemented", "5.5.1", "unimplemented", 0);
}

static void smtp_quit(const char *arg)
{
  (void)arg;
  greet(221, "");
  end_session(0, "quit");
}

/* mail_size - the SIZE= parameter of MAIL (RFC 1870), 0 when absent */
static unsigned long mail_size(const char *arg)
{
  const char *p = strchr(arg, '>');
  for (p = p ? p : arg; (p = strchr(p, ' ')); ) {
    while (*p == ' ') ++p;
    if (!case_diffb(p, 5, "SIZE=")) return control_scanulong(p + 5, 0);
  }
  return 0;
}

/* mail_auth_param - MAIL's AUTH=<xtext> (RFC 4954, as sagredo's patch): the client's claim of
 * who submitted the message; it becomes TCPREMOTEINFO (the Received line's "(info@ip)") only
 * when that is still unset, and only printable text without blanks, parentheses or '@'. */
static void mail_auth_param(const char *arg)
{
  static char info[65];
  const char *p = strchr(arg, '>');
  size_t n = 0;
  if (!p || s.remoteinfo) return;
  for (p = strchr(p, ' '); p && *p; p = strchr(p, ' ')) {
    while (*p == ' ') ++p;
    if (strncasecmp(p, "AUTH=", 5)) continue;
    for (p += 5; *p && *p != ' ' && n < sizeof info - 1; ++p) {
      char c = *p;
      if (c == '+' && p[1] && p[2]) {  /* xtext: +XX */
        unsigned v = 0;
        int k;
        for (k = 1; k <= 2; ++k) {
          char h = p[k];
          v = v * 16 + (unsigned)(h >= '0' && h <= '9' ? h - '0' : h >= 'A' && h <= 'F' ? h - 'A' + 10 : 99);
        }
        if (v > 255) return;
        c = (char)v;
        p += 2;
      }
      if (c <= ' ' || c > '~' || c == '(' || c == ')' || c == '@' || c == '<' || c == '>' || c == '\\')
        return;  /* "<>" (unknown submitter) and anything odd: ignored */
      info[n++] = c;
    }
    if (!n || (*p && *p != ' ')) return;
    info[n] = 0;
    s.remoteinfo = info;
    if (setenv("TCPREMOTEINFO", info, 1)) die_nomem();
    return;
  }
}

/* forceauth_ok - sagredo's FORCEAUTHMAILFROM: an authenticated client sends as itself */
static int forceauth_ok(void)
{
  const char *x = getenv("FORCEAUTHMAILFROM");
  if (!s.auth_user || !x || !strcmp(x, "0")) return 1;
  return !case_diffs(s.auth_user, s.rcpt.s);
}

static void smtp_mail(const char *arg)
{
  struct decision d;
  if (s.needhelo) { say_qmail(503, "EHLO first", "5.5.1", "order", 0); return; }
  if (auth_required() && !s.auth_user) {
    say_qmail(530, "Authorization required", "5.7.1", "authrequired", 0);
    return;
  }
  if (!parse(arg)) { err_syntax(); return; }
  if (!forceauth_ok()) {
    say_qmail(503, "from and auth not the same", "5.5.1", "forceauthmailfrom", 0);
    return;
  }
  s.declared_size = mail_size(arg);
  if (!stralloc_copy(&s.mailfrom, &s.rcpt) || !stralloc_0(&s.mailfrom)) die_nomem();
  --s.mailfrom.len;  /* the checks of this MAIL read the new sender; seenmail says if it holds */
  s.seenmail = 0;
  d = run_checks(STAGE_MAIL);
  if (d.code >= 400) { reply(&d); return; }
  if (d.delay_ms) io_wait((long)d.delay_ms, 0);
  s.seenmail = 1;
  s.rcptto.len = 0;
  s.nrcpt = 0;
  rules_newmail();
  mail_auth_param(arg);
  say(250, "ok");
}

static void smtp_rcpt(const char *arg)
{
  struct decision d;
  unsigned rulewait;
  if (!s.seenmail) { err_wantmail(); return; }
  if (!parse(arg)) { err_syntax(); return; }
  d = run_checks(STAGE_RCPT);
  if (d.code >= 400) { ++s.rcpt_bad; tarpit_rcpt_refused(&s, &d); reply(&d); return; }
  rulewait = d.delay_ms;  /* a tarpit rule's wait, kept over the TARPITCOUNT answer */
  d = tarpit_rcpt_ok(&s);  /* TARPITCOUNT: waits here, or 451 when the tarpit budget is spent */
  if (d.code >= 400) { ++s.rcpt_bad; reply(&d); return; }
  if (s.relayclient && !stralloc_cats(&s.rcpt, s.relayclient)) die_nomem();
  if (!stralloc_cats(&s.rcptto, "T") || !stralloc_cat(&s.rcptto, &s.rcpt) ||
      !stralloc_0(&s.rcptto))
    die_nomem();
  ++s.nrcpt;
  ++s.rcpt_ok;
  rules_accepted();
  if (!stralloc_0(&s.rcpt)) die_nomem();
  --s.rcpt.len;
  if (log_on(LOG_INFO)) {  /* every accepted recipient, at the default level */
    log_start("rcpt");
    log_str("ip", s.remoteip);
    log_addr("from", s.mailfrom.s);
    log_addr("to", s.rcpt.s);
    log_end();
  }
  {
    unsigned ms = valuser_delay_ms() + rulewait + d.delay_ms;  /* harvest defence, tarpit rules */
    if (ms) io_wait((long)ms, 0);
  }
  say(250, "ok");
}

/* protocol - the Received line's "with" text: SMTP as stock qmail, ESMTPA after AUTH
 * (RFC 3848), ESMTPS/ESMTPSA with the cipher as qmail-tls writes it */
static const char *protocol(void)
{
  static stralloc p;
  const char *c = starttls_cipher();
  if (!c) return s.auth_user ? "ESMTPA" : "SMTP";
  if (!stralloc_copys(&p, s.auth_user ? "ESMTPSA (" : "ESMTPS (") || !stralloc_cats(&p, c) ||
      !stralloc_cats(&p, s.auth_user ? " encrypted, authenticated)" : " encrypted)"))
    die_nomem();
  if (tls_client &&
      (!stralloc_cats(&p, "\n  (cert ") || !stralloc_cats(&p, tls_client) || !stralloc_cats(&p, ")")))
    die_nomem();
  if (!stralloc_0(&p))
    die_nomem();
  return p.s;
}

static void putqq(void *ctx, const char *x, size_t len) { qq_put(ctx, x, len); }

/* setting_ulong - a numeric setting, def when unset; a bad value is logged, never ignored
 * silently, and the default holds */
static unsigned long setting_ulong(const char *name, unsigned long def)
{
  const char *x = rules_get(name);
  unsigned long u;
  size_t used;
  if (!x) return def;
  u = control_scanulong(x, &used);
  if (*x && !x[used] && used < 10) return u;
  if (log_on(LOG_ERROR)) {
    log_start("error");
    log_str("reason", "setting");
    log_str("name", name);
    log_clients("value", x);
    log_end();
  }
  return def;
}

/* blast - stream the message from the client into qmail-queue (through content.c when on);
 * the minimum rate makes the whole DATA phase finite without hurting a slow but real link */
static void blast(struct blast *b, int content)
{
  blast_init(b, s.databytes, content ? content_put : putqq, &qq);
  io_rate(setting_ulong("DATAGRACE", DATAGRACE_DEF), setting_ulong("DATAMINRATE", DATAMINRATE_DEF));
  for (;;) {
    size_t used;
    int r;
    ssize_t n = io_fill();
    if (n == IO_TIMEOUT) die_alarm();
    if (n <= 0) die_read();
    r = blast_feed(b, buffer_peek(&io_in), (size_t)n, &used);
    buffer_seek(&io_in, used);
    if (r == BLAST_END) { io_rate(0, 0); return; }
    if (r == BLAST_BARELF) die_barelf();
  }
}

static void accepted(unsigned long qp)
{
  char buf[32 + 2 * FMT_ULONG];
  size_t n = 0;
  memcpy(buf, "ok ", 3); n = 3;
  n += fmt_ulong(buf + n, (unsigned long)time(0));
  memcpy(buf + n, " qp ", 4); n += 4;
  n += fmt_ulong(buf + n, qp);
  buf[n] = 0;
  ++s.nmsg;
  s.nbytes += s.msgbytes;
  if (log_on(LOG_INFO)) {
    log_start("accept");
    log_str("ip", s.remoteip);
    log_ulong("qp", qp);
    log_ulong("size", s.msgbytes);
    log_ulong("nrcpt", s.nrcpt);
    log_addr("from", s.mailfrom.s);
    log_str("tls", starttls_version() ? starttls_version() : "no");
    if (s.auth_user) log_clients("auth", s.auth_user);
    log_end();
  }
  say(250, buf);
}

/* log_qq - why qmail-queue failed: the program, its exit code or signal */
static void log_qq(unsigned long qp)
{
  int w = qq_lastwait();
  if (!log_on(LOG_ERROR)) return;
  log_start("error");
  log_str("reason", "qq");
  log_str("ip", s.remoteip);
  log_clients("prog", getenv("QMAILQUEUE") ? getenv("QMAILQUEUE") : "bin/qmail-queue");
  log_ulong("qp", qp);
  if (w == -1) log_str("exit", "unknown");
  else if (WIFSIGNALED(w)) log_ulong("signal", (unsigned long)WTERMSIG(w));
  else log_ulong("exit", (unsigned long)WEXITSTATUS(w));
  log_end();
}

static void smtp_data(const char *arg)
{
  struct decision d;
  struct blast b;
  const char *qqx;
  unsigned long qp;
  int content;
  (void)arg;
  if (!s.seenmail) { err_wantmail(); return; }
  if (!s.nrcpt) { say_qmail(503, "RCPT first", "5.5.1", "order", 0); return; }
  s.seenmail = 0;
  rules_data();  /* from here rules_get speaks for the message, not the last RCPT checked */
  d = run_checks(STAGE_DATA);
  if (d.code >= 400) { reply(&d); return; }
  d = content_begin(&s, &content, putqq, &qq);  /* clamd is connected before the 354 */
  if (d.code >= 400) { reply(&d); return; }
  if (qq_open(&qq) == -1) {
    content_end();
    say_qmail(451, "qqt failure", "4.3.0", "qqt", 0);
    return;
  }
  qp = (unsigned long)qq.pid;
  say(354, "go ahead");
  qq_received(&qq, protocol(), s.local, s.remoteip, s.remotehost, s.remoteinfo,
              s.fakehelo ? s.helo.s : 0);
  {
    const char *h = dnsbl_header();  /* tag-only DNSBL mode */
    if (h) qq_put(&qq, h, strlen(h));
    if ((h = switches_header())) qq_put(&qq, h, strlen(h));  /* qmail-ldap RBL addheader */
    if ((h = tarpit_header())) qq_put(&qq, h, strlen(h));  /* GREYLISTHEADER */
    if ((h = rules_tags())) qq_put(&qq, h, strlen(h));  /* tag rules */
  }
  blast(&b, content);
  s.hops = b.hops;
  s.msgbytes = b.bytes;
  s.msgoverflow = b.overflow;
  d = run_checks(STAGE_DATA_END);
  if (content && d.code < 400 && content_release(putqq, &qq) == -1) {
    d.code = 451; d.esc = "4.3.0"; d.text = "temporary content check failure";
    d.reason = "spool"; d.qmail = 0;
  }
  if (content) content_end();
  if (d.code >= 400) qq_fail(&qq);
  qqx = qq_close(&qq, s.mailfrom.s, s.mailfrom.len, s.rcptto.s, s.rcptto.len);
  if (d.code >= 400) { reply(&d); return; }
  if (!*qqx) { accepted(qp); return; }
  log_qq(qp);
  d.code = *qqx == 'D' ? 554 : 451;
  d.esc = 0;
  d.text = qqx + 1;
  d.reason = "qq";
  reply(&d);
}

/* tls_client_relay - qmail-tls: a client certificate that verifies against
 * control/clientca.pem and whose emailAddress is in control/tlsclients may relay */
static void tls_client_relay(void)
{
  const char *email = starttls_client(&tls_client_why);
  int r = starttls_client_relay(email);
  if (r == -1) die_control(STARTTLS_CLIENTS);
  if (!r) { if (email) tls_client_why = "not in tlsclients"; return; }
  tls_client = email;
  s.cert = email;
  if (!s.relayclient) s.relayclient = "";
  if (setenv("RELAYCLIENT", s.relayclient, 1)) die_nomem();
}

static void log_tls(const char *result, const char *why)
{
  if (!log_on(result ? LOG_ERROR : LOG_INFO)) return;
  log_start("tls");
  log_str("ip", s.remoteip);
  if (result) {
    log_str("result", result);
    log_clients("error", why);
    log_end();
    return;
  }
  log_str("version", starttls_version());
  log_str("cipher", starttls_cipher());
  if (starttls_sni()) log_str("sni", starttls_sni());
  if (strcmp(tls_client_why, "none")) log_clients("cert", tls_client_why);
  if (tls_client) log_clients("client", tls_client);
  log_end();
}

/* tls_start - context, then (for STARTTLS) 220, then the handshake; a failed handshake
 * ends the session: the client's stream is in an unknown state */
static int tls_start(int implicit)
{
  static stralloc t;
  const char *err = 0;
  if (starttls_prepare(&err) == -1) {  /* the reason (a file, a library) is for the log only */
    log_tls("ctx_error", err);
    if (implicit) end_session(1, "tls_ctx");
    say_qmail(454, "TLS not available due to temporary reason", "4.3.0", "tls_ctx", 0);
    return -1;
  }
  if (!implicit) say(220, "ready for tls");
  buffer_flush(&io_out);
  io_discard_input();  /* plaintext pipelined after STARTTLS is never executed (CVE-2011-0411) */
  if (starttls_handshake(&err) == -1) {
    log_tls("handshake_failed", err);
    end_session(1, "tls_handshake");
  }
  if (!stralloc_copys(&t, starttls_version()) || !stralloc_cats(&t, " ") ||
      !stralloc_cats(&t, starttls_cipher()) || !stralloc_0(&t))
    die_nomem();
  s.tls = t.s;
  if (starttls_sni() && !stralloc_copys(&greeting, starttls_sni())) die_nomem();
  tls_client_relay();
  log_tls(0, 0);
  return 0;
}

static void auth_prompt(const char *text)
{
  say(334, text);
  buffer_flush(&io_out);
}

static int auth_getline(char *buf, size_t size)
{
  size_t len;
  int r = io_getline(buf, size, &len);
  if (r == IO_TIMEOUT) { curcmd = "READ"; die_alarm(); }
  io_forget();
  if (r <= 0) die_read();
  return r == IO_LONG ? 0 : 1;
}

static const char *relay0, *info0;  /* RELAYCLIENT, TCPREMOTEINFO before AUTH */

static void setenv_or_unset(const char *name, const char *value)
{
  if (value ? setenv(name, value, 1) : unsetenv(name)) die_nomem();
}

/* auth_revoke - STARTTLS after a plaintext AUTH: forget it (RFC 3207 section 4.2) */
static void auth_revoke(void)
{
  static const char *const vars[] = {"SMTPAUTHUSER", "SMTP_AUTH_USER", "SMTPAUTHMETHOD"};
  size_t i;
  if (!s.auth_user) return;
  s.auth_user = s.auth_method = 0;
  s.relayclient = relay0;
  s.remoteinfo = info0;
  setenv_or_unset("RELAYCLIENT", relay0);
  setenv_or_unset("TCPREMOTEINFO", info0);
  for (i = 0; i < sizeof vars / sizeof vars[0]; ++i) setenv_or_unset(vars[i], 0);
}

/* auth_granted - RELAYCLIENT="" semantics, and the facts qmail-queue wrappers expect */
static void auth_granted(const char *user, const char *method)
{
  static stralloc u;
  if (!stralloc_copys(&u, user) || !stralloc_0(&u)) die_nomem();
  relay0 = s.relayclient;
  info0 = s.remoteinfo;
  s.auth_user = u.s;
  s.auth_method = method;
  s.remoteinfo = u.s;
  if (!s.relayclient) s.relayclient = "";
  if (setenv("RELAYCLIENT", s.relayclient, 1) || setenv("TCPREMOTEINFO", u.s, 1) ||
      setenv("SMTPAUTHUSER", u.s, 1) || setenv("SMTP_AUTH_USER", u.s, 1) ||
      setenv("SMTPAUTHMETHOD", method, 1))
    die_nomem();
}

/* smtp_starttls - RFC 3207: afterwards the client starts again with EHLO; HELO, AUTH and
 * the mail transaction are forgotten */
static void smtp_starttls(const char *arg)
{
  if (!starttls_offer()) { smtp_unimpl(arg); return; }
  if (*arg) {
    say_qmail(501, "Syntax error (no parameters allowed)", "5.5.4", "syntax", 0);
    return;
  }
  if (tls_start(0) == -1) return;
  auth_revoke();
  s.seenmail = 0;
  s.esmtp = 0;
  s.needhelo = 1;
  dohelo(s.remotehost);
  s.helo.len = 0;
  s.helo.s[0] = 0;
  s.fakehelo = 0;
}

static void smtp_auth(const char *arg)
{
  static const struct auth_io aio = {auth_prompt, auth_getline};
  static int noted;
  const char *user = 0, *method = 0;
  struct decision d;
  if (auth_note() && !noted && log_on(LOG_ERROR)) {  /* SMTPAUTH set, nothing (fully) checks */
    noted = 1;
    log_start("auth");
    log_str("ip", s.remoteip);
    log_str("result", auth_configured() ? "limited" : "unavailable");
    log_str("why", auth_note());
    log_end();
  }
  if (!auth_configured()) { smtp_unimpl(arg); return; }
  if (!auth_enabled()) { say_qmail(503, "auth not available", "5.3.3", "auth_off", 0); return; }
  if (s.needhelo) { say_qmail(503, "EHLO first", "5.5.1", "order", 0); return; }
  if (s.auth_user) {
    say_qmail(503, "you're already authenticated", "5.5.0", "order", 0);
    return;
  }
  if (s.seenmail) {
    say_qmail(503, "no auth during mail transaction", "5.5.0", "order", 0);
    return;
  }
  if (!auth_offer()) {
    say_qmail(538, "auth not available without TLS", "5.3.3", "auth_notls", 0);
    return;
  }
  if ((d = tarpit_auth(&s)).code) { reply(&d); return; }  /* AUTHFAILRATE across connections */
  {
    long long cap = io_deadline(io_now_ms() + timeout_ms);  /* the exchange as a whole */
    d = auth_command(arg, &aio, &user, &method);
    io_deadline(cap);
  }
  if (d.code == 235) auth_granted(user, method);
  if (d.code == 535) tarpit_auth_failed(&s);
  if (log_on(LOG_INFO) && (d.code == 235 || d.code == 535 || d.code == 454)) {
    log_start("auth");
    log_str("ip", s.remoteip);
    log_str("result", d.code == 235 ? "ok" : d.code == 535 ? "failed" : "error");
    if (method) log_str("method", method);
    if (user) log_clients("user", user);
    log_end();
  }
  reply(&d);
}

struct command {
  const char *verb;
  const char *name;  /* for the log */
  void (*fn)(const char *arg);
};
static const struct command commands[] = {
  {"rcpt", "RCPT", smtp_rcpt}, {"mail", "MAIL", smtp_mail}, {"data", "DATA", smtp_data},
  {"quit", "QUIT", smtp_quit}, {"helo", "HELO", smtp_helo}, {"ehlo", "EHLO", smtp_ehlo},
  {"rset", "RSET", smtp_rset}, {"help", "HELP", smtp_help}, {"noop", "NOOP", smtp_noop},
  {"vrfy", "VRFY", smtp_vrfy}, {"starttls", "STARTTLS", smtp_starttls},
  {"auth", "AUTH", smtp_auth}, {0, "UNKNOWN", smtp_unimpl},
};

/* dispatch - qmail's commands(): the verb is the text before the first space (compared
 * case-insensitively, exactly), the argument the rest after spaces; a NUL ends the line */
static void dispatch(char *l)
{
  char *arg = l + strcspn(l, " ");
  const struct command *c;
  if (*arg) *arg++ = 0;
  while (*arg == ' ') ++arg;
  for (c = commands; c->verb; ++c)
    if (!case_diffs(c->verb, l)) break;
  curcmd = c->name;
  parsed = 0;
  if (log_on(LOG_DEBUG)) {
    log_start("command");
    log_clients("verb", l);
    /* never an AUTH response: only the mechanism */
    if (c->fn == smtp_auth) log_client("arg", arg, strcspn(arg, " "));
    else log_clients("arg", arg);
    log_end();
  }
  c->fn(arg);
  if (c->fn == smtp_auth) {
    memset(line, 0, sizeof line);
    io_forget();
  }
}

static void instruct_warn(const char *why, const char *l)
{
  if (!log_on(LOG_ERROR)) return;
  log_start("instruct");
  log_str("act", "ignored");
  log_str("why", why);
  log_clients("line", l);
  log_end();
}

static const char *env_or(const char *name, const char *def)
{
  const char *x = getenv(name);
  return x ? x : def;
}

/* instructions - the instruct cdb, before anything else reads the environment */
static void instructions(void)
{
  static stralloc cmd;
  const char *key;
  const char *path = instruct_path();
  int r = instruct_apply(path, env_or("TCPREMOTEIP", "unknown"), getenv("TCPREMOTEHOST"),
                         &cmd, &key, instruct_warn);
  if (r == INSTRUCT_NONE) return;
  log_init();  /* LOGLEVEL may have changed */
  if (r == INSTRUCT_ERROR) die_control(path);
  if (log_on(LOG_INFO)) {
    log_start("instruct");
    log_str("ip", env_or("TCPREMOTEIP", "unknown"));
    log_clients("key", key);
    log_str("act", r == INSTRUCT_DENY ? "deny" : r == INSTRUCT_EXEC ? "exec" : "allow");
    log_end();
  }
  if (r == INSTRUCT_EXEC) {
    char *argv[] = {"/bin/sh", "-c", cmd.s, 0};
    signal(SIGPIPE, SIG_DFL);  /* as tcpsvd would have started it */
    execv("/bin/sh", argv);
    die_control("/bin/sh");
  }
  if (r == INSTRUCT_DENY) {
    if (control_readline(&greeting, "control/smtpgreeting") != 1 &&
        control_readline(&greeting, "control/me") != 1)
      stralloc_copys(&greeting, "");
    curcmd = "CONNECT";
    greet_why(554, " sorry, your address is not allowed to use this server (#5.7.1)",
              "instruct_deny");
    end_session(1, "instruct_deny");
  }
}

/* setup - qmail-smtpd's setup(): control files, then the environment */
static void setup(void)
{
  int meok, r, timeout = 1200, databytes = 0;
  const char *x;
  unsigned int db;
  if ((meok = control_readline(&me, "control/me")) == -1) die_control("control/me");
  r = control_readline(&greeting, "control/smtpgreeting");
  if (r == -1) die_control("control/smtpgreeting");
  if (!r) {
    if (!meok) die_control("control/me");
    if (!stralloc_copy(&greeting, &me)) die_nomem();
  }
  liphostok = control_readline(&liphost, "control/localiphost");
  if (liphostok == -1) die_control("control/localiphost");
  if (!liphostok && meok) {
    if (!stralloc_copy(&liphost, &me)) die_nomem();
    liphostok = 1;
  }
  if (control_readint(&timeout, "control/timeoutsmtpd") == -1) die_control("control/timeoutsmtpd");
  if (timeout <= 0) timeout = 1;
  if (stock_init() == -1) die_control(stock_error());
  if (control_readint(&databytes, "control/databytes") == -1) die_control("control/databytes");
  db = (unsigned int)databytes;
  if ((x = getenv("DATABYTES"))) db = (unsigned int)control_scanulong(x, 0);
  if (db + 1 == 0) --db;
  s.databytes = db;
  io_settimeout((unsigned long)timeout);
  timeout_ms = timeout > 86400 * 365 ? 86400L * 365 * 1000 : (long)timeout * 1000;
  qq_settimeout((unsigned long)timeout);
  s.remoteip = env_or("TCPREMOTEIP", "unknown");
  s.local = env_or("TCPLOCALHOST", env_or("TCPLOCALIP", "unknown"));
  s.remotehost = env_or("TCPREMOTEHOST", "unknown");
  s.remoteinfo = getenv("TCPREMOTEINFO");
  s.relayclient = getenv("RELAYCLIENT");
  dohelo(s.remotehost);
  s.helo.len = 0;  /* for the log: nothing said yet */
  s.helo.s[0] = 0;
  s.fakehelo = 0;
}

/* restricted - qmail-ldap's 550GREETING/421GREETING: the refusal instead of the banner
 * (and the end with SMTP550DISCONNECT), then 20 seconds for each command, of which only QUIT
 * does anything */
static void restricted(const struct decision *g)
{
  keep421 = 1;
  io_settimeout(20);
  curcmd = "CONNECT";
  reply(g);
  for (;;) {
    size_t len;
    struct decision d;
    int r = io_getline(line, sizeof line, &len);
    if (r == IO_TIMEOUT) { curcmd = "READ"; die_alarm(); }
    if (r <= 0) die_read();
    line[strcspn(line, " ")] = 0;
    if (r == IO_LINE && !case_diffs(line, "quit")) { curcmd = "QUIT"; smtp_quit(""); }
    curcmd = "RESTRICTED";
    d = switches_restricted(r == IO_LINE ? line : "");
    reply(&d);
  }
}

static void args(int argc, char **argv)
{
  if (argc < 2) return;
  /* "mxguard-smtpd -V" alone: a host name never starts with '-' and a checkpassword program
   * comes with a host name or contains '/', so no AUTH form can be read this way */
  if (argc == 2 && version_arg(argv[1])) version_print("mxguard-smtpd");
  if (strchr(argv[1], '/')) auth_argv = argv + 1;
  else {
    auth_host = argv[1];
    if (argc > 2) auth_argv = argv + 2;
  }
}

int main(int argc, char **argv)
{
  if (getenv(HANDOFF_ENV)) handoff_receive();  /* mxguard-front -P: started before its client */
  signal(SIGPIPE, SIG_IGN);
  s.start_ms = io_now_ms();
  io_die = die_write;
  log_init();
  s.remoteip = env_or("TCPREMOTEIP", "unknown");
  args(argc, argv);
  if (control_chdir() == -1) die_control(control_home());
  instructions();
  setup();
  auth_init(auth_host, auth_argv, s.local);
  if (log_on(LOG_INFO)) {
    log_start("connect");
    log_str("ip", s.remoteip);
    log_clients("host", s.remotehost);
    log_str("relay", s.relayclient ? "yes" : "no");
    if (auth_argv) log_str("auth", "configured");
    if (log_on(LOG_DEBUG)) log_str("version", mxguard_version);
    if (!auth_argv && auth_configured()) log_str("auth", "auth_smtp");  /* qmail-ldap's bin/auth_smtp */
    log_end();
  }
  if (getenv("MXG_TRACE")) rules_trace = trace;
  rules_observer = observe_rule;
  rules_start(&s);
  switches_init(me.len ? &me : &greeting);
  {
    const char *file;  /* DNS lookups go out now: the answers arrive while the client talks */
    struct decision d;
    if (dnsbl_start(&s, &file) == -1) die_control(file);
    if ((d = dnsbl_greeting(&s)).code) reply(&d);  /* DNSBLGREETING: refuse before the banner */
    if ((d = tarpit_connect(&s, die_lifetime, dnsbl_ptr_pending)).code) reply(&d);  /* rates, greeting delay */
  }
  if (getenv("SMTPS")) tls_start(1);  /* implicit TLS (port 465): before the banner */
  {
    /* the connect checks: rules with DELAYREJECT=0 (554, closed), 550GREETING/421GREETING
     * (switches.c: the dummy dialogue) */
    struct decision d = run_checks(STAGE_CONNECT);
    if (d.code >= 400) {
      curcmd = "CONNECT";
      if (switches_restricts(&d)) restricted(&d);
      if (d.code >= 500) d.code = 554;
      reply(&d);
      end_session(1, d.reason ? d.reason : "refused");
    }
  }
  greet(220, " ESMTP");
  for (;;) {
    size_t len;
    int r = io_getline(line, sizeof line, &len);
    if (r == IO_TIMEOUT) { curcmd = "READ"; die_alarm(); }
    if (r <= 0) die_read();
    if (r == IO_LONG) {
      struct decision d = DECISION_NONE;
      curcmd = "LONGLINE";
      d.code = 500; d.esc = "5.5.2"; d.text = "line too long"; d.reason = "longline";
      reply(&d);
      if (++longlines >= LONGLINES_MAX) {
        d.code = 421; d.esc = "4.7.0"; d.text = "too many long lines, closing connection";
        reply(&d);
      }
      continue;
    }
    dispatch(line);
  }
}
