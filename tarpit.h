/* tarpit.h - slowing and limiting clients: recipient tarpit, recipient and error limits,
 * greeting delay and early talkers, inbound throttle and session lifetime, rates across
 * connections, greylisting, and the site-wide budget of sleeping sessions */
#ifndef TARPIT_H
#define TARPIT_H
#include "decision.h"
#include "session.h"

#define TARPIT_DELAY_MAX 60   /* seconds: one tarpit or greeting delay, well under 5 minutes */

/* tarpit_connect - before the banner: throttle and session lifetime (expired is called from
 * io.c's poll loop when the lifetime is over; it must not return), connection rate and
 * concurrency, the greeting delay (early talkers refused; while ptr_pending() says the PTR
 * answer is still to come, the client's class is not known yet). A decision to reply (it
 * drops), or none. */
struct decision tarpit_connect(struct session *s, void (*expired)(void), int (*ptr_pending)(void));

/* checks for smtpd.c's table */
struct decision tarpit_mail(struct session *s);      /* STAGE_MAIL: message rates */
struct decision tarpit_rcptmax(struct session *s);   /* STAGE_RCPT: MAXRCPTCOUNT, maxrcpt */
struct decision tarpit_rates(struct session *s);     /* STAGE_RCPT: recipient rates, harvest */
struct decision tarpit_greylist(struct session *s);  /* STAGE_RCPT: GREYLIST */

/* tarpit_header - with GREYLISTHEADER, at DATA: "X-Greylist: delayed N seconds by
 * mxguard-smtpd at HOST\n" when a recipient's triplet passed greylisting for the first time
 * in this transaction, else 0 */
const char *tarpit_header(void);

/* tarpit_rcpt_ok - a recipient passed every check: TARPITCOUNT/TARPITDELAY waits here, or
 * (budget spent) gives the 451 to answer instead */
struct decision tarpit_rcpt_ok(struct session *s);
/* tarpit_rcpt_refused - count an unknown recipient (reason nouser*) for BADRCPTRATE */
void tarpit_rcpt_refused(struct session *s, const struct decision *d);
struct decision tarpit_auth(struct session *s);      /* before AUTH: AUTHFAILRATE */
void tarpit_auth_failed(struct session *s);

/* tarpit_sleep - a decision's delay under the budget: 0 waited, -1 not waited (budget spent) */
int tarpit_sleep(unsigned ms);
/* tarpit_errors - after a 4xx/5xx reply: 1 when MAXERRORS is reached (421 and close) */
int tarpit_errors(const struct session *s);
void tarpit_end(void);   /* at exit: leave the concurrency counts, close the store */

/* exposed for tests */
long tarpit_parse_ms(const char *x, long unit_ms);   /* "5", "1500ms", "2m"; -1 bad */
int tarpit_parse_rate(const char *x, long *limit, long *window_s);  /* "N/T": 0, -1 */
void tarpit_grey_sender(char *out, size_t size, const char *addr);  /* postgrey's normalising */
int tarpit_net(char *out, size_t size, const char *ip, int v4bits, int v6bits);  /* 0, -1 */
int tarpit_in_net(const char *ip, const char *line);  /* 1 inside, 0 not */
#endif
