/* stock.c - the checks stock qmail-smtpd makes, with its exact replies: badmailfrom (the
 * whole sender or its "@domain" part, case-insensitive, answered at every RCPT), rcpthosts
 * and morercpthosts.cdb (the domain after the last @ or a suffix of it starting at a dot;
 * skipped when RELAYCLIENT is set; an absent rcpthosts allows everything, as qmail does),
 * the hop limit and databytes. Reads control/rcpthosts, control/morercpthosts.cdb (only when
 * rcpthosts exists) and control/badmailfrom once per connection; a read error is -1 at
 * init (421) and a cdb read error at lookup is a 421, never a 5xx. RCPT_MAX bounds the
 * envelope, which qmail leaves unbounded. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <open.h>
#include <cdb.h>
#include "control.h"
#include "stock.h"

static struct cmap rcpthosts, bmf;
static int rhok, bmfok;
static int fdmrh = -1;
static int mrhinit;
static struct cdb mrh;
static const char *errfile;

const char *stock_error(void) { return errfile; }

int stock_init(void)
{
  rhok = cmap_load(&rcpthosts, "control/rcpthosts");
  if (rhok == -1) { errfile = "control/rcpthosts"; return -1; }
  if (rhok) {
    fdmrh = open("control/morercpthosts.cdb", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fdmrh == -1 && errno != ENOENT) { errfile = "control/morercpthosts.cdb"; return -1; }
  }
  bmfok = cmap_load(&bmf, "control/badmailfrom");
  if (bmfok == -1) { errfile = "control/badmailfrom"; return -1; }
  return 0;
}

static struct decision qmailreply(int code, const char *esc, const char *text, const char *why)
{
  struct decision d = DECISION_NONE;
  d.code = code; d.esc = esc; d.text = text; d.reason = why; d.qmail = 1;
  return d;
}

struct decision stock_rcptmax(struct session *s)
{
  struct decision d = DECISION_NONE;
  if (s->nrcpt < RCPT_MAX) return d;
  d.code = 452; d.esc = "4.5.3"; d.text = "too many recipients"; d.reason = "rcptmax";
  return d;
}

const stralloc *stock_badmailfrom_lines(void) { return bmfok == 1 ? &bmf.sa : 0; }

struct decision stock_badmailfrom(struct session *s)
{
  const char *a = s->mailfrom.s, *dom;
  size_t len = s->mailfrom.len;
  int r;
  if (!bmfok) return DECISION_NONE;
  r = cmap_has(&bmf, a, len);
  if (!r && (dom = memchr(a, '@', len))) {
    dom = a + len;
    while (*--dom != '@') ;
    r = cmap_has(&bmf, dom, len - (size_t)(dom - a));
  }
  if (r == -1) return qmailreply(421, "4.3.0", "out of memory", "nomem");
  if (r) return qmailreply(553, "5.7.1", "sorry, your envelope sender is in my badmailfrom list",
                           "badmailfrom");
  return DECISION_NONE;
}

/* mrhfind - key in morercpthosts.cdb: 1, 0, -1 read error */
static int mrhfind(const char *key, size_t len)
{
  if (fdmrh == -1) return 0;
  if (!mrhinit) {
    if (control_cdbcheck(fdmrh) == -1) return -1;  /* damaged: never "not in the list" */
    cdb_init(&mrh, fdmrh);
    mrhinit = 1;
  }
  return cdb_find(&mrh, (const unsigned char *)key, len);
}

/* allowed - qmail's rcpthosts(): 1 allowed, 0 not, -1 error */
static int allowed(const char *addr, size_t len)
{
  static stralloc host;
  const char *dom;
  size_t j;
  int pass;
  if (rhok != 1) return 1;
  if (!(dom = memchr(addr, '@', len))) return 1;
  dom = addr + len;
  while (*--dom != '@') ;
  ++dom;
  if (!stralloc_copyb(&host, dom, len - (size_t)(dom - addr))) return -1;
  for (j = 0; j < host.len; ++j)
    if (host.s[j] >= 'A' && host.s[j] <= 'Z') host.s[j] += 32;
  for (pass = 0; pass < 2; ++pass)
    for (j = 0; j < host.len; ++j)
      if (!j || host.s[j] == '.') {
        int r = pass ? mrhfind(host.s + j, host.len - j) : cmap_has(&rcpthosts, host.s + j, host.len - j);
        if (r) return r;
      }
  return 0;
}

int stock_allowed(const char *addr, size_t len) { return allowed(addr, len); }

struct decision stock_rcpthosts(struct session *s)
{
  int r;
  if (s->relayclient) return DECISION_NONE;
  r = allowed(s->rcpt.s, s->rcpt.len);
  if (r == -1) {
    struct decision d = qmailreply(421, "4.3.0", "unable to read controls", "control");
    d.drop = 1;
    return d;
  }
  if (!r) return qmailreply(553, "5.7.1", "sorry, that domain isn't in my list of allowed rcpthosts",
                            "rcpthosts");
  return DECISION_NONE;
}

struct decision stock_hops(struct session *s)
{
  if (s->hops < MAXHOPS) return DECISION_NONE;
  return qmailreply(554, "5.4.6", "too many hops, this message is looping", "hops");
}

struct decision stock_databytes(struct session *s)
{
  if (!s->msgoverflow) return DECISION_NONE;
  return qmailreply(552, "5.3.4", "sorry, that message size exceeds my databytes limit", "databytes");
}
