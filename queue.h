/* queue.h - the qmail-queue pipe, the Received line, the exit-code table */
#ifndef QUEUE_H
#define QUEUE_H
#include <stddef.h>
#include <buffer.h>

#define QQ_ERRFD 6          /* notqmail: custom error text from qmail-queue on fd 6, exit 82 */
#define QQ_ERRTEXT_MAX 255

struct qq {
  int pid;
  int pidfd;          /* proc_pidfd(pid), or -1 */
  int fdm, fde, fdc;  /* message, envelope, custom error */
  int err;            /* a write failed or the message was refused locally */
  buffer b;
  char buf[16384];
};

void qq_settimeout(unsigned long seconds);
int qq_open(struct qq *q);  /* vfork+exec $QMAILQUEUE or bin/qmail-queue; -1: 451 qqt failure */
void qq_put(struct qq *q, const char *s, size_t len);
void qq_fail(struct qq *q);
void qq_received(struct qq *q, const char *protocol, const char *local, const char *remoteip,
                 const char *remotehost, const char *remoteinfo, const char *helo);
/* qq_close - send the envelope (unless failed), wait, map the exit status: "" when queued,
 * else 'D' (permanent) or 'Z' (temporary) followed by the reply text */
const char *qq_close(struct qq *q, const char *from, size_t fromlen, const char *rcptto, size_t len);
/* qq_lastwait - the wait status of the qmail-queue qq_close waited for last, -1 unknown */
int qq_lastwait(void);
const char *qq_exitmsg(int exitcode);  /* the table alone, for tests */
size_t qq_fmtdate(char *out, long t);  /* "22 Nov 2026 03:19:57 -0000" */
#endif
