/* auth.h - SMTP AUTH (RFC 4954): PLAIN, LOGIN, CRAM-MD5, checked by a checkpassword program */
#ifndef AUTH_H
#define AUTH_H
#include <stddef.h>
#include "decision.h"

#define AUTH_LINE_MAX 12288  /* a client's AUTH response line (RFC 4954 section 4) */
#define AUTH_USER_MAX 255

enum { AUTH_PLAIN = 1, AUTH_LOGIN = 2, AUTH_CRAM = 4 };

/* auth_init - from argv ("hostname checkprog args" or "checkprog args", argv[1] with a '/')
 * and SMTPAUTH; host and prog as smtpd.c split them. 1 when AUTH is enabled */
int auth_init(const char *host, char **prog, const char *local);
int auth_configured(void);   /* a checkpassword argv was given, or qmail-ldap's bin/auth_smtp */
int auth_tls_required(void); /* SMTPAUTH=TLSREQUIRED (qmail-ldap): AUTH only inside TLS */
const char *auth_note(void); /* why AUTH is off or limited although SMTPAUTH is set, or 0 */
int auth_enabled(void);
int auth_required(void);     /* AUTHREQUIRED, or SMTPAUTH starting with '!' */
unsigned auth_methods(void); /* AUTH_* bits */
const char *auth_ehlo(int hostform_equal); /* "AUTH LOGIN PLAIN CRAM-MD5" (static) */

/* the dialogue: smtpd.c sends 334 prompts and reads the client's lines */
struct auth_io {
  void (*prompt)(const char *text);            /* writes "334 text" */
  int (*getline)(char *buf, size_t size);      /* 1 line, 0 too long, -1 EOF/timeout */
};

/* auth_command - one AUTH command: arg is "MECH [initial-response]". On success *user is the
 * authenticated name (static) and *method "plain"/"login"/"cram-md5". The decision is the
 * reply: 235, 501, 504, 535 (with delay), 454. */
struct decision auth_command(const char *arg, const struct auth_io *io, const char **user,
                             const char **method);

/* building blocks, exported for tests/t_auth */
int auth_b64decode(const char *in, size_t len, char *out, size_t *outlen); /* 0 ok, -1 bad */
size_t auth_b64encode(const char *in, size_t len, char *out);              /* out: 4/3 len + 4 */
/* auth_plain - split "authzid\0user\0pass": 0 ok, -1 malformed (empty user/pass, CR/LF) */
int auth_plain(const char *in, size_t len, const char **user, const char **pass);
/* auth_cram_split - "user SP hexdigest", split at the last space: 0 ok, -1 malformed */
int auth_cram_split(char *in, size_t len, const char **user, const char **digest);
/* auth_checkpw - run the checkpassword program: fields on fd 3, child killed after
 * timeout_ms. 0 ok, 1 refused, or one of the AUTH_E* codes */
enum { AUTH_EPIPE = 2, AUTH_EFORK, AUTH_EWRITE, AUTH_ECHILD };
int auth_checkpw(char **argv, const char *user, const char *pass, const char *chal,
                 unsigned long timeout_ms);
#endif
