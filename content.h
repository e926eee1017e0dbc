/* content.h - DATA-time checks: MIME policy blocks, REJECTEXEC, clamd, spamd, and the
 * per-recipient content-policy class. One verdict before the reply to the final dot. */
#ifndef CONTENT_H
#define CONTENT_H
#include <stddef.h>
#include "decision.h"
#include "session.h"

/* content_rcpt - STAGE_RCPT check: with CONTENTCLASS set, 452 4.5.3 for a recipient whose
 * content settings differ from the transaction's first accepted recipient */
struct decision content_rcpt(struct session *s);

/* content_begin - at DATA, before the 354: reads every accepted recipient's settings and
 * connects to clamd. Returns a 4xx decision when clamd is down (and not fail-open) or a
 * control file is unreadable, else code 0; *on is set when the message bytes must go through
 * content_put, which passes them on to put(ctx) (qmail-queue) at once or, when spamd
 * tagging holds them, in content_release. */
struct decision content_begin(struct session *s, int *on,
                              void (*put)(void *ctx, const char *x, size_t len), void *ctx);

/* content_put - the converted message bytes as they stream (a blast put callback) */
void content_put(void *ctx, const char *x, size_t len);

/* content_check - STAGE_DATA_END check: the verdict (552/554 refusals, 451 scanner
 * trouble), logs event=content */
struct decision content_check(struct session *s);

/* content_release - after an accepting verdict, before qmail-queue is closed: the added
 * X-Spam-* header fields and then any held bytes through put. -1 when the spool cannot be
 * read (451). */
int content_release(void (*put)(void *ctx, const char *x, size_t len), void *ctx);

/* content_end - close the scanners and the spool (any outcome) */
void content_end(void);
#endif
