/* tls.c - TLS for the client connection with OpenSSL 3: STARTTLS (RFC 3207) and implicit TLS
 * (SMTPS, port 465), qmail-tls conventions. Reads control/servercert.pem (certificate chain and
 * private key in one file), control/servercerts/NAME/servercert.pem for SNI, the cipher list
 * from $TLSCIPHERS or control/tlsserverciphers (lines joined with ':', else DEFAULT), and
 * DISABLETLS=1 to switch STARTTLS off. TLS 1.2 is the minimum. OpenSSL is only touched when a
 * session starts TLS, so a plain session pays nothing for it. The handshake and every TLS read
 * and write are non-blocking on fd 0/1 and wait in io.c's poll() with its deadline. A missing
 * or broken certificate means the context cannot be made: smtpd.c answers 454 and the session
 * goes on in plaintext. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include "ossl.h"  /* OpenSSL is loaded at the first STARTTLS: every call goes through it */
#include <stralloc.h>
#include "control.h"
#include "io.h"
#include "tls.h"
#include "tlscache.h"

#define SNI_MAX 253  /* a DNS name */

static SSL_CTX *ctx;
static SSL *ssl;
static int active;
static char sni[SNI_MAX + 1];
static int sni_used;

int starttls_active(void) { return active; }

int starttls_offer(void)
{
  struct stat st;
  const char *x = getenv("DISABLETLS");
  if (active) return 0;
  if (x && !strcmp(x, "1")) return 0;
  return stat(STARTTLS_CERT, &st) == 0;
}

static const char *sslerr(void)
{
  static char buf[256];
  unsigned long e = ERR_get_error();
  if (!e) return "unknown error";
  ossl_errstrings();
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

/* ciphers - $TLSCIPHERS, else control/tlsserverciphers joined with ':', else DEFAULT */
static const char *ciphers(void)
{
  static stralloc sa;
  size_t i;
  const char *x = getenv("TLSCIPHERS");
  if (x && *x) return x;
  if (control_readfile(&sa, "control/tlsserverciphers") != 1 || !sa.len) return "DEFAULT";
  for (i = 0; i + 1 < sa.len; ++i)
    if (!sa.s[i]) sa.s[i] = ':';
  if (!stralloc_0(&sa)) return "DEFAULT";
  return sa.s;
}

/* sni_ok - a server name we may turn into a path: letters, digits, '-', '.', no ".." */
static int sni_ok(const char *n)
{
  size_t i, len = strlen(n);
  if (!len || len > SNI_MAX || n[0] == '.' || strstr(n, "..")) return 0;
  for (i = 0; i < len; ++i) {
    char c = n[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '-' || c == '.'))
      return 0;
  }
  return 1;
}

/* servername - SNI: control/servercerts/NAME/servercert.pem replaces the default
 * certificate when it exists; an unknown or odd name keeps the default */
static int servername(SSL *s, int *al, void *arg)
{
  char path[SNI_MAX + 64];
  const char *n = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
  size_t i;
  struct stat st;
  (void)al; (void)arg;
  if (!n || !sni_ok(n)) return SSL_TLSEXT_ERR_OK;
  for (i = 0; n[i]; ++i) sni[i] = (n[i] >= 'A' && n[i] <= 'Z') ? (char)(n[i] + 32) : n[i];
  sni[i] = 0;
  strcpy(path, "control/servercerts/");
  strcat(path, sni);
  strcat(path, "/servercert.pem");
  if (stat(path, &st) == -1) return SSL_TLSEXT_ERR_OK;
  if (SSL_use_certificate_chain_file(s, path) != 1 ||
      SSL_use_PrivateKey_file(s, path, SSL_FILETYPE_PEM) != 1 || SSL_check_private_key(s) != 1) {
    ERR_clear_error();
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  sni_used = 1;
  return SSL_TLSEXT_ERR_OK;
}

/* anyverify - a client certificate never fails the handshake: a bad one only means no
 * relay right, judged afterwards from SSL_get_verify_result */
static int anyverify(int ok, X509_STORE_CTX *x) { (void)ok; (void)x; return 1; }

/* clientca - with control/clientca.pem, ask for a client certificate (qmail-tls) and check it
 * against those CAs and control/clientcrl.pem if present; 0 ok or not configured, -1 error */
static int clientca(void)
{
  struct stat st;
  STACK_OF(X509_NAME) *names;
  if (stat(STARTTLS_CLIENTCA, &st) == -1) return 0;
  if (SSL_CTX_load_verify_locations(ctx, STARTTLS_CLIENTCA, 0) != 1) return -1;
  if (!(names = SSL_load_client_CA_file(STARTTLS_CLIENTCA))) return -1;
  SSL_CTX_set_client_CA_list(ctx, names);
  if (stat(STARTTLS_CLIENTCRL, &st) == 0) {
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    if (X509_STORE_load_file(store, STARTTLS_CLIENTCRL) != 1) return -1;
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, anyverify);
  return 1;
}

int starttls_prepare(const char **err)
{
  const char *c;
  if (ssl) return 0;
  if (ossl_load(err) == -1) return -1;
  /* no openssl.cnf: it could name engines or providers to load; everything we need is set
   * here */
  if (!OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG | OPENSSL_INIT_NO_ADD_ALL_CIPHERS |
                        OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS | OPENSSL_INIT_NO_LOAD_SSL_STRINGS, 0)) {
    /* TLS fetches its ciphers from the provider by name: the legacy table of every cipher
     * (1.9 M instructions) is not built; the error texts are loaded only to show an error */
    *err = sslerr();
    return -1;
  }
  ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) { *err = sslerr(); return -1; }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
                               SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  /* one process per connection with a random ticket key: a session could never be resumed,
   * so neither cache nor tickets (TLS 1.3 tickets would also cost two writes after the
   * handshake, and Nagle then holds our next reply for the client's delayed ACK) */
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_num_tickets(ctx, 0);
  c = ciphers();
  /* one list serves both: TLS 1.2 names go to the cipher list, 1.3 names to the suites */
  {
    int list = SSL_CTX_set_cipher_list(ctx, c), suites = SSL_CTX_set_ciphersuites(ctx, c);
    if (!list && !suites) { *err = sslerr(); return -1; }
  }
  ERR_clear_error();
  /* the chain and key from their DER cache (tlscache.c) when it is current, else from the
   * PEM, and then the cache is written for the next session */
  if (!tlscache_load(ctx, STARTTLS_CERT)) {
    struct stat st;
    int known = stat(STARTTLS_CERT, &st) == 0;
    if (SSL_CTX_use_certificate_chain_file(ctx, STARTTLS_CERT) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, STARTTLS_CERT, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      *err = sslerr();
      return -1;
    }
    if (known) tlscache_save(ctx, STARTTLS_CERT, &st);
  }
  SSL_CTX_set_tlsext_servername_callback(ctx, servername);
  if (clientca() == -1) { *err = sslerr(); return -1; }
  if (!(ssl = SSL_new(ctx))) { *err = sslerr(); return -1; }
  if (!SSL_set_rfd(ssl, io_in.fd) || !SSL_set_wfd(ssl, io_out.fd)) { *err = sslerr(); return -1; }
  return 0;
}

/* want - turn an SSL result into io.c's convention: -1 with errno EAGAIN and *w the event
 * to wait for, 0 for EOF, -1 with errno set for an error */
static ssize_t want(int r, int *w)
{
  switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ: *w = POLLIN; errno = EAGAIN; return -1;
    case SSL_ERROR_WANT_WRITE: *w = POLLOUT; errno = EAGAIN; return -1;
    case SSL_ERROR_ZERO_RETURN: return 0;
    case SSL_ERROR_SYSCALL: if (!errno) return 0; return -1;
    default: ERR_clear_error(); errno = EPROTO; return -1;
  }
}

static ssize_t tread(void *c, char *buf, size_t len, int *w)
{
  int r;
  (void)c;
  if (len > 0x40000000) len = 0x40000000;
  ERR_clear_error();
  errno = 0;
  r = SSL_read(ssl, buf, (int)len);
  return r > 0 ? r : want(r, w);
}

static ssize_t twrite(void *c, const char *buf, size_t len, int *w)
{
  int r;
  (void)c;
  if (len > 0x40000000) len = 0x40000000;
  ERR_clear_error();
  errno = 0;
  r = SSL_write(ssl, buf, (int)len);
  if (r > 0) return r;
  if (want(r, w) == 0) errno = EPIPE;
  return -1;
}

static int step(void *c, int *w)
{
  int r;
  (void)c;
  ERR_clear_error();
  errno = 0;
  r = SSL_accept(ssl);
  if (r == 1) return 1;
  if (want(r, w) == -1 && errno == EAGAIN) return 0;
  return -1;
}

static const struct io_tls hook = {tread, twrite, 0};

int starttls_handshake(const char **err)
{
  int r, one = 1;
  fcntl(io_in.fd, F_SETFL, fcntl(io_in.fd, F_GETFL) | O_NONBLOCK);
  fcntl(io_out.fd, F_SETFL, fcntl(io_out.fd, F_GETFL) | O_NONBLOCK);
  /* records go out as OpenSSL writes them; without this a reply waits for a delayed ACK.
   * Fails harmlessly on a pipe. */
  setsockopt(io_out.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  r = io_handshake(step, 0);
  if (r == 0) { *err = "timeout"; return -1; }
  if (r < 0) {
    unsigned long e = ERR_peek_error();
    *err = e ? sslerr() : errno ? strerror(errno) : "connection closed";
    return -1;
  }
  active = 1;
  io_settls(&hook);
  return 0;
}

const char *starttls_version(void) { return active ? SSL_get_version(ssl) : 0; }
const char *starttls_cipher(void) { return active ? SSL_get_cipher_name(ssl) : 0; }
const char *starttls_sni(void) { return active && sni_used ? sni : 0; }

/* starttls_client - the client certificate's emailAddress when it verified against
 * control/clientca.pem, else 0; *why says what was wrong (for the log) */
const char *starttls_client(const char **why)
{
  static char email[256];
  X509 *cert;
  X509_NAME *subj;
  long v;
  int n;
  *why = "none";
  if (!active || !(cert = SSL_get1_peer_certificate(ssl))) return 0;
  v = SSL_get_verify_result(ssl);
  subj = X509_get_subject_name(cert);
  n = X509_NAME_get_text_by_NID(subj, NID_pkcs9_emailAddress, email, sizeof email);
  X509_free(cert);
  if (v != X509_V_OK) { *why = X509_verify_cert_error_string(v); return 0; }
  if (n <= 0 || (size_t)n != strlen(email)) { *why = "no emailAddress"; return 0; }
  *why = "ok";
  return email;
}

/* starttls_client_relay - the verified certificate's e-mail address is a line of
 * control/tlsclients: 1 yes, 0 no, -1 the file could not be read */
int starttls_client_relay(const char *email)
{
  static stralloc sa;
  size_t i = 0;
  int r;
  if (!email) return 0;
  r = control_readfile(&sa, STARTTLS_CLIENTS);
  if (r != 1) return r;
  while (i < sa.len) {
    const char *e = sa.s + i;
    if (!strcmp(e, email)) return 1;
    i += strlen(e) + 1;
  }
  return 0;
}
