/* mxguard-tlscache - writes control/servercert.der, the DER cache of control/servercert.pem
 * (tlscache.c), for installations where mxguard-smtpd cannot write the control directory.
 * Run as root after installing or renewing the certificate (or leave the cache to the first
 * STARTTLS when the smtpd user may write there). Usage: mxguard-tlscache [-n]; -n only
 * checks: the exit status says whether the cache is current (0) or not (1).
 * Reads QMAILHOME like mxguard-smtpd. Exit 0 written (or current), 1 not current (-n),
 * 111 trouble (message on fd 2). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include "ossl.h"
#include "control.h"
#include "tls.h"
#include "tlscache.h"

static int die(const char *what, const char *why)
{
  fprintf(stderr, "mxguard-tlscache: %s: %s\n", what, why);
  return 111;
}

static const char *sslerr(void)
{
  static char buf[256];
  unsigned long e = ERR_get_error();
  if (!e) return "unknown error";
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

int main(int argc, char **argv)
{
  const char *err;
  char der[512];
  struct stat st;
  SSL_CTX *ctx;
  int checkonly = argc > 1 && !strcmp(argv[1], "-n");
  if (argc > 2 || (argc == 2 && !checkonly)) return die("usage", "mxguard-tlscache [-n]");
  if (control_chdir() == -1) return die(control_home(), "cannot chdir");
  if (stat(STARTTLS_CERT, &st) == -1) return die(STARTTLS_CERT, "cannot stat");
  if (ossl_load(&err) == -1) return die("OpenSSL", err);
  if (!OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG, 0) || !(ctx = SSL_CTX_new(TLS_server_method())))
    return die("OpenSSL", sslerr());
  tlscache_path(STARTTLS_CERT, der, sizeof der);
  if (tlscache_load(ctx, STARTTLS_CERT)) {
    printf("%s/%s is current\n", control_home(), der);
    return 0;
  }
  if (checkonly) {
    printf("%s/%s is missing, stale or unusable\n", control_home(), der);
    return 1;
  }
  if (SSL_CTX_use_certificate_chain_file(ctx, STARTTLS_CERT) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, STARTTLS_CERT, SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1)
    return die(STARTTLS_CERT, sslerr());
  if (tlscache_save(ctx, STARTTLS_CERT, &st) == -1)
    return die(der, "not written (key type other than RSA or EC, the PEM changed meanwhile, or "
                    "the directory is not writable)");
  printf("%s/%s written\n", control_home(), der);
  return 0;
}
