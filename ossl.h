/* ossl.h - the OpenSSL functions tls.c calls, reached through pointers that ossl_load() fills
 * from libssl.so.3 (and its libcrypto.so.3) on the first STARTTLS or SMTPS. Include it after
 * the OpenSSL headers, in tls.c only: every name below then means the loaded function. */
#ifndef OSSL_H
#define OSSL_H
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define OSSL_LIB "libssl.so.3"
/* preferred, when it lies beside the binary: the Makefile's own libssl+libcrypto object */
#define OSSL_OWN "mxguard-ossl.so"

#define OSSL_FUNCS(F) \
  F(ERR_clear_error) \
  F(ERR_error_string_n) \
  F(ERR_get_error) \
  F(ERR_peek_error) \
  F(OPENSSL_init_ssl) \
  F(SSL_CIPHER_get_name) \
  F(SSL_CTX_callback_ctrl) \
  F(SSL_CTX_check_private_key) \
  F(SSL_CTX_ctrl) \
  F(SSL_CTX_get_cert_store) \
  F(SSL_CTX_load_verify_locations) \
  F(SSL_CTX_new) \
  F(SSL_CTX_set_cipher_list) \
  F(SSL_CTX_set_ciphersuites) \
  F(SSL_CTX_set_client_CA_list) \
  F(SSL_CTX_set_num_tickets) \
  F(SSL_CTX_set_options) \
  F(SSL_CTX_set_verify) \
  F(SSL_CTX_use_PrivateKey_file) \
  F(SSL_CTX_use_certificate_chain_file) \
  F(SSL_accept) \
  F(SSL_check_private_key) \
  F(SSL_get1_peer_certificate) \
  F(SSL_get_current_cipher) \
  F(SSL_get_error) \
  F(SSL_get_servername) \
  F(SSL_get_verify_result) \
  F(SSL_get_version) \
  F(SSL_load_client_CA_file) \
  F(SSL_new) \
  F(SSL_read) \
  F(SSL_set_rfd) \
  F(SSL_set_wfd) \
  F(SSL_use_PrivateKey_file) \
  F(SSL_use_certificate_chain_file) \
  F(SSL_write) \
  F(TLS_server_method) \
  F(X509_NAME_get_text_by_NID) \
  F(X509_STORE_load_file) \
  F(X509_STORE_set_flags) \
  F(X509_free) \
  F(X509_get_subject_name) \
  F(X509_verify_cert_error_string)

struct ossl {
#define OSSL_FIELD(name) __typeof__(name) *name;
  OSSL_FUNCS(OSSL_FIELD)
#undef OSSL_FIELD
};
extern struct ossl ossl;

/* ossl_load - dlopen the library once; 0, or -1 with *err saying why */
int ossl_load(const char **err);
/* ossl_sym - another function of the loaded library (or of libcrypto), or 0 */
void *ossl_sym(const char *name);
/* ossl_own_stale - 1: mxguard-ossl.so was there but built against another system OpenSSL than
 * the one installed now, so ossl_load took libssl.so.3 */
int ossl_own_stale(void);
/* ossl_narrow - with mxguard-ossl.so, make its narrowed default provider (ossl_prov.c) the
 * library's only one (and openssl.cnf unread): call right after ossl_load, before any other
 * OpenSSL call. 1 done, 0 not (OpenSSL's default provider is then used) */
int ossl_narrow(void);
/* ossl_errstrings - load OpenSSL's error texts (tls.c starts without them) */
void ossl_errstrings(void);

#ifndef OSSL_IMPL
#define ERR_clear_error (ossl.ERR_clear_error)
#define ERR_error_string_n (ossl.ERR_error_string_n)
#define ERR_get_error (ossl.ERR_get_error)
#define ERR_peek_error (ossl.ERR_peek_error)
#define OPENSSL_init_ssl (ossl.OPENSSL_init_ssl)
#define SSL_CIPHER_get_name (ossl.SSL_CIPHER_get_name)
#define SSL_CTX_callback_ctrl (ossl.SSL_CTX_callback_ctrl)
#define SSL_CTX_check_private_key (ossl.SSL_CTX_check_private_key)
#define SSL_CTX_ctrl (ossl.SSL_CTX_ctrl)
#define SSL_CTX_get_cert_store (ossl.SSL_CTX_get_cert_store)
#define SSL_CTX_load_verify_locations (ossl.SSL_CTX_load_verify_locations)
#define SSL_CTX_new (ossl.SSL_CTX_new)
#define SSL_CTX_set_cipher_list (ossl.SSL_CTX_set_cipher_list)
#define SSL_CTX_set_ciphersuites (ossl.SSL_CTX_set_ciphersuites)
#define SSL_CTX_set_client_CA_list (ossl.SSL_CTX_set_client_CA_list)
#define SSL_CTX_set_num_tickets (ossl.SSL_CTX_set_num_tickets)
#define SSL_CTX_set_options (ossl.SSL_CTX_set_options)
#define SSL_CTX_set_verify (ossl.SSL_CTX_set_verify)
#define SSL_CTX_use_PrivateKey_file (ossl.SSL_CTX_use_PrivateKey_file)
#define SSL_CTX_use_certificate_chain_file (ossl.SSL_CTX_use_certificate_chain_file)
#define SSL_accept (ossl.SSL_accept)
#define SSL_check_private_key (ossl.SSL_check_private_key)
#define SSL_get1_peer_certificate (ossl.SSL_get1_peer_certificate)
#define SSL_get_current_cipher (ossl.SSL_get_current_cipher)
#define SSL_get_error (ossl.SSL_get_error)
#define SSL_get_servername (ossl.SSL_get_servername)
#define SSL_get_verify_result (ossl.SSL_get_verify_result)
#define SSL_get_version (ossl.SSL_get_version)
#define SSL_load_client_CA_file (ossl.SSL_load_client_CA_file)
#define SSL_new (ossl.SSL_new)
#define SSL_read (ossl.SSL_read)
#define SSL_set_rfd (ossl.SSL_set_rfd)
#define SSL_set_wfd (ossl.SSL_set_wfd)
#define SSL_use_PrivateKey_file (ossl.SSL_use_PrivateKey_file)
#define SSL_use_certificate_chain_file (ossl.SSL_use_certificate_chain_file)
#define SSL_write (ossl.SSL_write)
#define TLS_server_method (ossl.TLS_server_method)
#define X509_NAME_get_text_by_NID (ossl.X509_NAME_get_text_by_NID)
#define X509_STORE_load_file (ossl.X509_STORE_load_file)
#define X509_STORE_set_flags (ossl.X509_STORE_set_flags)
#define X509_free (ossl.X509_free)
#define X509_get_subject_name (ossl.X509_get_subject_name)
#define X509_verify_cert_error_string (ossl.X509_verify_cert_error_string)
#endif
#endif
