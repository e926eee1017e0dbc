/* decision.h - a check's answer to smtpd.c, the one contract between checks and the dialogue.
 *
 * code 0 means "no opinion, ask the next check"; 250 means "permit, skip later checks";
 * 4xx defers, 5xx rejects, 421 (or drop set) also ends the session. Strings are static or
 * owned by the module that made the decision until its next call. A check that could not
 * decide because something it needs is broken or down answers 4xx, never 5xx. */
#ifndef DECISION_H
#define DECISION_H

struct decision {
  int code;             /* 0, 250, 4xx, 5xx */
  const char *esc;      /* enhanced status code "5.1.1" (RFC 3463), or 0 for none */
  const char *text;     /* reply text: printable, no CR/LF, under 400 bytes */
  const char *reason;   /* short fixed log token: "nouser", "rcpthosts", "badmailfrom" */
  unsigned delay_ms;    /* wait this long before answering (tarpits) */
  unsigned char drop;   /* close the connection after this reply */
  unsigned char qmail;  /* write qmail style: "553 text (#5.7.1)" instead of "553 5.7.1 text" */
};

#define DECISION_NONE ((struct decision){0, 0, 0, 0, 0, 0, 0})

#endif
