/* stock.h - qmail-smtpd's own checks, as entries of smtpd.c's check table */
#ifndef STOCK_H
#define STOCK_H
#include "decision.h"
#include "session.h"

#define MAXHOPS 100

int stock_init(void);  /* read rcpthosts, morercpthosts.cdb, badmailfrom: 0, or -1 (421) */
const char *stock_error(void);  /* the file that could not be read */
/* stock_allowed - the recipient's domain is in rcpthosts/morercpthosts.cdb (or no rcpthosts):
 * 1, 0, -1 error */
int stock_allowed(const char *addr, size_t len);
struct decision stock_rcptmax(struct session *s);
struct decision stock_badmailfrom(struct session *s);
/* stock_badmailfrom_lines - control/badmailfrom as read at init (entries NUL-terminated), or
 * 0 when absent: switches.c reads the same lines as sagredo's regexes */
const stralloc *stock_badmailfrom_lines(void);
struct decision stock_rcpthosts(struct session *s);
struct decision stock_hops(struct session *s);
struct decision stock_databytes(struct session *s);
#endif
