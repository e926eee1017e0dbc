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
#include <time.h>
#include <unistd.h>
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
#include "session.h"
#include "stock.h"
#include "tls.h"
#include "valuser.h"

#define SMTP_LINE_MAX 2048  /* bytes before the LF; Postfix's line_length_limit */
#define LONGLINES_MAX 3     /* too-long command lines before the session is dropped */
#define REASONS_MAX 8       /* distinct refusal reasons counted for the summary line */

static struct session s;
static stralloc greeting, liphost;
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
  {"rcptmax", STAGE_RCPT, stock_rcptmax, CHECK_HARD},
  {"badmailfrom", STAGE_RCPT, stock_badmailfrom, CHECK_POLICY},
  {"rcpthosts", STAGE_RCPT, stock_rcpthosts, CHECK_HARD},
  {"dnsbl_mail", STAGE_MAIL, dnsbl_mail, CHECK_POLICY},
  {"dnsbl", STAGE_RCPT, dnsbl_rcpt, CHECK_POLICY},
  {"valuser", STAGE_RCPT, valuser_check, CHECK_HARD},
  {"hops", STAGE_DATA_END, stock_hops, CHECK_HARD},
  {"databytes", STAGE_DATA_END, stock_databytes, CHECK_HARD},
  {"contentclass", STAGE_RCPT, content_rcpt, CHECK_POLICY},
  {"content", STAGE_DATA_END, content_check, CHECK_POLICY},
};

static struct decision run_checks(enum stage st)
{
  size_t i;
  for (i = 0; i < sizeof checks / sizeof checks[0]; ++i)
    if (checks[i].stage == st) {
      struct decision d = checks[i].fn(&s);
      if (d.code) return d;
    }
  return DECISION_NONE;
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

/* reply - the one way a reply reaches the client: writes it (text may hold several lines
 * separated by \n), logs it, counts it, and ends the session for 421 or drop */
static void reply(const struct decision *d)
{
  char code[FMT_ULONG];
  const char *t = d->text ? d->text : "";
  code[fmt_ulong(code, (unsigned long)d->code)] = 0;
  if (d->delay_ms) io_wait((long)d->delay_ms, 0);
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
  if (d->drop || d->code == 421) end_session(1, d->reason ? d->reason : "dropped");
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
static void die_alarm(void) { say_qmail(451, "timeout", "4.4.2", "timeout", 1); }
static void die_read(void) { end_session(1, "eof"); }
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

static void smtp_helo(const char *arg)
{
  greet(250, "");
  s.seenmail = 0;
  s.needhelo = 0;
  s.esmtp = 0;
  dohelo(arg);
}

/* auth_offer - AUTH is offered and allowed: configured, and not plaintext while TLS could
 * be had (sagredo's FORCETLS, default on; FORCETLS=0 allows AUTH without TLS) */
static int auth_offer(void)
{
  const char *x = getenv("FORCETLS");
  if (!auth_enabled() || s.auth_user) return 0;
  if (starttls_active() || (x && !strcmp(x, "0"))) return 1;
  return !starttls_offer();
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
  greet(250, ext.s);
  s.seenmail = 0;
  s.esmtp = 1;
  s.needhelo = 0;
  dohelo(arg);
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

static void smtp_mail(const char *arg)
{
  struct decision d;
  if (s.needhelo) { say_qmail(503, "EHLO first", "5.5.1", "order", 0); return; }
  if (auth_required() && !s.auth_user) {
    say_qmail(530, "Authorization required", "5.7.1", "authrequired", 0);
    return;
  }
  if (!parse(arg)) { err_syntax(); return; }
  d = run_checks(STAGE_MAIL);
  if (d.code >= 400) { reply(&d); return; }
  s.seenmail = 1;
  s.rcptto.len = 0;
  s.nrcpt = 0;
  if (!stralloc_copy(&s.mailfrom, &s.rcpt) || !stralloc_0(&s.mailfrom)) die_nomem();
  --s.mailfrom.len;
  say(250, "ok");
}

static void smtp_rcpt(const char *arg)
{
  struct decision d;
  if (!s.seenmail) { err_wantmail(); return; }
  if (!parse(arg)) { err_syntax(); return; }
  d = run_checks(STAGE_RCPT);
  if (d.code >= 400) { ++s.rcpt_bad; reply(&d); return; }
  if (s.relayclient && !stralloc_cats(&s.rcpt, s.relayclient)) die_nomem();
  if (!stralloc_cats(&s.rcptto, "T") || !stralloc_cat(&s.rcptto, &s.rcpt) ||
      !stralloc_0(&s.rcptto))
    die_nomem();
  ++s.nrcpt;
  ++s.rcpt_ok;
  if (!stralloc_0(&s.rcpt)) die_nomem();
  --s.rcpt.len;
  {
    unsigned ms = valuser_delay_ms();  /* harvest defence: slow down a client guessing users */
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

/* blast - stream the message from the client into qmail-queue (through content.c when on) */
static void blast(struct blast *b, int content)
{
  blast_init(b, s.databytes, content ? content_put : putqq, &qq);
  for (;;) {
    size_t used;
    int r;
    ssize_t n = io_fill();
    if (n == IO_TIMEOUT) die_alarm();
    if (n <= 0) die_read();
    r = blast_feed(b, buffer_peek(&io_in), (size_t)n, &used);
    buffer_seek(&io_in, used);
    if (r == BLAST_END) return;
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
  if (starttls_prepare(&err) == -1) {
    log_tls("ctx_error", err);
    if (implicit) end_session(1, "tls_ctx");
    if (!stralloc_copys(&t, "TLS unable to initialize ctx: ") || !stralloc_cats(&t, err) ||
        !stralloc_0(&t))
      die_nomem();
    say_qmail(454, t.s, "4.3.0", "tls_ctx", 0);
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
  const char *user = 0, *method = 0;
  struct decision d;
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
  d = auth_command(arg, &aio, &user, &method);
  if (d.code == 235) auth_granted(user, method);
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
  static stralloc me;
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

static void args(int argc, char **argv)
{
  if (argc < 2) return;
  if (strchr(argv[1], '/')) auth_argv = argv + 1;
  else {
    auth_host = argv[1];
    if (argc > 2) auth_argv = argv + 2;
  }
}

int main(int argc, char **argv)
{
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
    log_end();
  }
  {
    const char *file;  /* DNS lookups go out now: the answers arrive while the client talks */
    struct decision d;
    if (dnsbl_start(&s, &file) == -1) die_control(file);
    if ((d = dnsbl_greeting(&s)).code) reply(&d);  /* DNSBLGREETING: refuse before the banner */
  }
  if (getenv("SMTPS")) tls_start(1);  /* implicit TLS (port 465): before the banner */
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
