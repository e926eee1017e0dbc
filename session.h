/* session.h - one client connection: who it is, what it said, what the checks found.
 * smtpd.c owns it; checks read it and write only the facts they own. */
#ifndef SESSION_H
#define SESSION_H
#include <stralloc.h>

enum stage { STAGE_CONNECT, STAGE_HELO, STAGE_MAIL, STAGE_RCPT, STAGE_DATA, STAGE_DATA_END };

enum { DNS_UNKNOWN, DNS_OK, DNS_NONE, DNS_MISMATCH, DNS_TEMP };  /* DNS fact status */
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
  int needhelo;             /* after STARTTLS: nothing but HELO/EHLO, NOOP, RSET, QUIT */
  const char *tls;          /* "TLSv1.3 TLS_AES_256_GCM_SHA384" once in TLS, else 0 */
  const char *auth_user;    /* the AUTH user once authenticated, else 0 */
  const char *auth_method;  /* "plain", "login", "cram-md5" */
  const char *cert;         /* a verified client certificate's e-mail, else 0 */

  /* the transaction */
  int seenmail;             /* a MAIL was accepted since the last HELO/EHLO/RSET/DATA */
  stralloc mailfrom;        /* sender, NUL-terminated (len without the NUL) */
  stralloc rcpt;            /* the recipient being checked, NUL-terminated */
  stralloc rcptto;          /* envelope: "T" addr NUL, for every accepted recipient */
  unsigned nrcpt;           /* accepted recipients in this transaction */
  unsigned long declared_size; /* MAIL's SIZE= parameter, 0 when not given */

  /* the message (at STAGE_DATA_END) */
  unsigned long databytes;  /* limit, 0 = none */
  unsigned long msgbytes;   /* converted message bytes (without our Received) */
  int msgoverflow;          /* msgbytes went past databytes */
  unsigned long hops;       /* Received:/Delivered-To: header lines */

  /* content facts at STAGE_DATA_END, written only by content.c (0: none found or not on) */
  const char *virus;        /* clamd's signature name */
  const char *content_block;/* the policy block that hit: "rejectexec", "content:attach"... */
  int spam_scored;          /* spamd gave a score: spam_score is its tenths */
  long spam_score;
  unsigned mime_flags;      /* broken MIME seen (mime.h MIME_F_*) when the MIME reader ran */

  /* DNS facts, written only by dnsbl.c (DNS_UNKNOWN: not looked up) */
  int rdns;                 /* the PTR: DNS_OK (rdns_name set), DNS_NONE, DNS_TEMP */
  int fcrdns;               /* the PTR name's A/AAAA: DNS_OK, DNS_NONE, DNS_MISMATCH, DNS_TEMP */
  const char *rdns_name;    /* the first PTR name (or TCPREMOTEHOST), else 0 */
  int dnsbl_score;          /* sum of the weights of the lists that list the client */

  /* counters for the summary line */
  long long start_ms;
  unsigned long nmsg, nbytes, rcpt_ok, rcpt_bad, nerrors;
};
#endif
