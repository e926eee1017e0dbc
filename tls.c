/* tls.c - TLS for the client connection with OpenSSL 3: STARTTLS (RFC 3207) and implicit TLS
 * (SMTPS, port 465), qmail-tls conventions. Reads control/servercert.pem (certificate chain and
 * private key in one file), control/servercerts/NAME/servercert.pem for SNI, the cipher list
 * from $TLSCIPHERS or control/tlsserverciphers (lines joined with ':', else DEFAULT), and
 * DISABLETLS=1 to switch STARTTLS off. TLS 1.2 is the minimum. OpenSSL is only touched when a
 * session starts TLS, so a plain session pays nothing for it. The handshake and every TLS read
 * and write are non-blocking on fd 0/1 and wait in io.c's poll() with its deadline. A missing
 * or broken certificate means the context cannot be made: smtpd.c answers 454 and the session
 * goes on in plaintext. Certificate files that are not regular files (a FIFO would block
 * OpenSSL's read outside every deadline) are refused before OpenSSL sees them. Under an
 * address-space limit (softlimit -m, chpst -m, ulimit -v) too small to load OpenSSL and make
 * a handshake, STARTTLS is not offered at all, and the reason is logged once. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
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
#include "log.h"
#include "tls.h"
#include "tlscache.h"

#define SNI_MAX 253  /* a DNS name */

static SSL_CTX *ctx;
static SSL *ssl;
static int active;
static char sni[SNI_MAX + 1];
static int sni_used;

int starttls_active(void) { return active; }

/* asroom - the address-space limit leaves STARTTLS_AS_NEED bytes beyond what the process
 * maps now (measured: libssl, libcrypto and a handshake with a 2048-bit RSA key need about
 * 8.5 MB); 1 yes or no limit, 0 no (logged once) */
static int asroom(void)
{
  static int known, room;
  struct rlimit rl;
  unsigned long long used = 0;
  if (known) return room;
  known = room = 1;
  if (getrlimit(RLIMIT_AS, &rl) == -1 || rl.rlim_cur == RLIM_INFINITY) return room;
  {
    char buf[64];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd == -1 ? -1 : read(fd, buf, sizeof buf - 1);
    if (fd != -1) close(fd);
    if (n > 0) {
      buf[n] = 0;
      used = (unsigned long long)control_scanulong(buf, 0) * (unsigned long long)sysconf(_SC_PAGESIZE);
    } else
      used = 4ULL << 20;  /* no /proc: a static session's size, with room to spare */
  }
  if ((unsigned long long)rl.rlim_cur >= used + STARTTLS_AS_NEED) return room;
  room = 0;
  if (log_on(LOG_ERROR)) {
    log_start("tls");
    log_str("result", "not_offered");
    log_str("reason", "address_space");
    log_ulong("limit_kb", (unsigned long)(rl.rlim_cur >> 10));
    log_ulong("need_kb", (unsigned long)((used + STARTTLS_AS_NEED) >> 10));
    log_end();
  }
  return room;
}

int starttls_wanted(void)
{
  struct stat st;
  const char *x = getenv("DISABLETLS");
  if (active) return 0;
  if (x && !strcmp(x, "1")) return 0;
  return stat(STARTTLS_CERT, &st) == 0;
}

int starttls_offer(void) { return starttls_wanted() && asroom(); }

/* regular - path, if it exists (or must), is a regular file: never hand OpenSSL a FIFO or a
 * device. 0 fine (or absent and optional), -1 with *err */
static int regular(const char *path, int must, const char **err)
{
  static char why[128];
  struct stat st;
  if (stat(path, &st) == -1) {
    if (!must && errno == ENOENT) return 0;
    strcpy(why, "cannot stat ");
  } else if (!S_ISREG(st.st_mode))
    strcpy(why, "not a regular file: ");
  else
    return 0;
  strncat(why, path, sizeof why - strlen(why) - 1);
  *err = why;
  return -1;
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
  if (stat(path, &st) == -1 || !S_ISREG(st.st_mode)) return SSL_TLSEXT_ERR_OK;
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
  if (regular(STARTTLS_CERT, 1, err) == -1 || regular(STARTTLS_CLIENTCA, 0, err) == -1 ||
      regular(STARTTLS_CLIENTCRL, 0, err) == -1)
    return -1;
  if (ossl_load(err) == -1) return -1;
  if (ossl_own_stale() && log_on(LOG_ERROR)) {
    /* the system's OpenSSL was updated after mxguard-ossl.so was built: the update is used,
     * at the old cost, until mxguard-ossl.so is built and installed again */
    log_start("tls");
    log_str("result", "fallback");
    log_str("reason", "stale_" OSSL_OWN);
    log_str("lib", OSSL_LIB);
    log_end();
  }
  /* with mxguard-ossl.so: fewer ciphers built at the first fetch, a cheaper name map
   * (ossl_prov.c); with libssl.so.3 the default provider */
  ossl_narrow();
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
  /* one list serves both: TLS 1.2 names go to the cipher list, 1.3 names to the suites.
   * "DEFAULT" is what SSL_CTX_new set already (parsing it again costs 0.19 M instructions) */
  if (strcmp(c, "DEFAULT")) {
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
