/* session.h - one client connection: who it is, what it said, what the checks found.
 * smtpd.c owns it; checks read it and write only the facts they own. */
#ifndef SESSION_H
#define SESSION_H
#include <stralloc.h>

enum stage { STAGE_CONNECT, STAGE_HELO, STAGE_MAIL, STAGE_RCPT, STAGE_DATA, STAGE_DATA_END };

#define RCPT_MAX 1000   /* recipients per message (Postfix's smtpd_recipient_limit); then 452 */

struct session {
  /* the client, from the tcpserver/tcpsvd environment */
  const char *remoteip;     /* TCPREMOTEIP or "unknown" */
  const char *remotehost;   /* TCPREMOTEHOST or "unknown" */
  const char *remoteinfo;   /* TCPREMOTEINFO or 0 */
  const char *local;        /* TCPLOCALHOST, else TCPLOCALIP, else "unknown" */
  const char *relayclient;  /* RELAYCLIENT: 0 when unset, else the suffix for recipients */
  stralloc helo;            /* HELO/EHLO argument, NUL-terminated; remotehost before any */
  int fakehelo;             /* helo differs from remotehost: Received shows (HELO ...) */
  int esmtp;                /* last greeting was EHLO */

  /* the transaction */
  int seenmail;             /* a MAIL was accepted since the last HELO/EHLO/RSET/DATA */
  stralloc mailfrom;        /* sender, NUL-terminated (len without the NUL) */
  stralloc rcpt;            /* the recipient being checked, NUL-terminated */
  stralloc rcptto;          /* envelope: "T" addr NUL, for every accepted recipient */
  unsigned nrcpt;           /* accepted recipients in this transaction */

  /* the message (at STAGE_DATA_END) */
  unsigned long databytes;  /* limit, 0 = none */
  unsigned long msgbytes;   /* converted message bytes (without our Received) */
  int msgoverflow;          /* msgbytes went past databytes */
  unsigned long hops;       /* Received:/Delivered-To: header lines */

  /* counters for the summary line */
  long long start_ms;
  unsigned long nmsg, nbytes, rcpt_ok, rcpt_bad, nerrors;
};
#endif
