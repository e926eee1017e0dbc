/* tls.h - STARTTLS and implicit TLS (OpenSSL 3) for the client connection */
#ifndef MXTLS_H
#define MXTLS_H

#define STARTTLS_CERT "control/servercert.pem"
#define STARTTLS_CLIENTCA "control/clientca.pem"
#define STARTTLS_CLIENTCRL "control/clientcrl.pem"
#define STARTTLS_CLIENTS "control/tlsclients"
/* address space STARTTLS needs beyond what a session maps before it: ~8.5 MB measured */
#define STARTTLS_AS_NEED (10UL << 20)

/* starttls_offer - STARTTLS can be offered: control/servercert.pem exists, DISABLETLS is not
 * 1, the session is not in TLS yet and an address-space limit leaves room for OpenSSL */
int starttls_offer(void);
/* starttls_wanted - the same without the address-space check: TLS is configured (FORCETLS keeps
 * AUTH off in plaintext then, even when the limit keeps STARTTLS from being offered) */
int starttls_wanted(void);
int starttls_active(void);

/* starttls_prepare - the context for this session (OpenSSL is initialised here, never before).
 * 0 ok; -1 with *err set to OpenSSL's reason */
int starttls_prepare(const char **err);

/* starttls_handshake - accept TLS on fd 0/1 within the read deadline, then route io.c's reads
 * and writes through it. 0 ok; -1 failed or timed out, *err says why */
int starttls_handshake(const char **err);

const char *starttls_version(void);   /* "TLSv1.3", or 0 before TLS */
const char *starttls_cipher(void);
const char *starttls_sni(void);       /* the certificate name picked by SNI, or 0 */
/* client certificates (control/clientca.pem): the verified emailAddress or 0 with *why */
const char *starttls_client(const char **why);
int starttls_client_relay(const char *email);  /* listed in control/tlsclients: 1, 0, -1 */
#endif
