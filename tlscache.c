/* tlscache.c - the server certificate chain and private key decoded once, kept as DER beside
 * the PEM: control/servercert.pem -> control/servercert.der. OpenSSL 3.0 decodes a PEM key
 * through its generic decoder machinery (about 4.8 M instructions per process for a P-256
 * key); the key as DER through the type's own d2i costs about 0.4 M. The cache is written at
 * the first STARTTLS that finds none (or a stale one) when the control directory is writable
 * by the smtpd, or by "mxguard-tlscache" run as root; it is used only while it was made from
 * the very same PEM file (device, inode, size, mtime and ctime recorded in it), so replacing
 * or editing the PEM makes it stale and it is rewritten. It holds the private key: it is
 * written readable by exactly whom the PEM is readable (owner, and group or others only
 * when the PEM is), never group- or world-writable; it is used only when it is no more
 * readable than the PEM, not group- or world-writable, a regular file (opened without
 * following a symbolic link) of at most TLSCACHE_MAX bytes, owned by us or by the PEM's
 * owner; otherwise it is ignored and the PEM is used. RSA and EC keys are cached;
 * other key types keep the PEM path.
 * Format: "mxguard-tls-der 1\n", the PEM's identity (7 x 8 bytes), the key type, the number
 * of certificates, then the key and each certificate (leaf first) as a 4-byte length and DER
 * bytes; integers little-endian. */
#define OPENSSL_SUPPRESS_DEPRECATED  /* d2i_RSAPrivateKey, d2i_ECPrivateKey: the cheap path */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include "ossl.h"
#include "tlscache.h"

#define TLSCACHE_MAX 65536
#define TLSCACHE_CERTS 16
#define MAGIC "mxguard-tls-der 1\n"
#define MAGICLEN 18

/* the functions only this file uses, looked up in the loaded library */
#define TC_FUNCS(F) \
  F(d2i_X509) F(i2d_X509) F(d2i_RSAPrivateKey) F(d2i_ECPrivateKey) F(i2d_PrivateKey) \
  F(EVP_PKEY_new) F(EVP_PKEY_assign) F(EVP_PKEY_free) F(EVP_PKEY_get_base_id) \
  F(SSL_CTX_use_certificate) F(SSL_CTX_use_PrivateKey) F(SSL_CTX_get0_certificate) \
  F(SSL_CTX_get0_privatekey) F(OPENSSL_sk_num) F(OPENSSL_sk_value)
static struct {
#define TC_FIELD(name) __typeof__(name) *name;
  TC_FUNCS(TC_FIELD)
#undef TC_FIELD
} f;

static int syms(void)
{
  static int done;
  if (done) return done;
  done = 1;
#define TC_SYM(name) if (!(*(void **)&f.name = ossl_sym(#name))) done = -1;
  TC_FUNCS(TC_SYM)
#undef TC_SYM
  return done;
}

static unsigned char buf[TLSCACHE_MAX];

int tlscache_path(const char *pem, char *out, size_t size)
{
  size_t n = strlen(pem);
  if (n > 4 && !strcmp(pem + n - 4, ".pem")) n -= 4;
  if (n + 5 > size) return -1;
  memcpy(out, pem, n);
  memcpy(out + n, ".der", 5);
  return 0;
}

static void put64(unsigned char *p, unsigned long long v)
{
  int i;
  for (i = 0; i < 8; ++i) p[i] = (unsigned char)(v >> (8 * i));
}

static unsigned long get32(const unsigned char *p)
{
  return (unsigned long)p[0] | (unsigned long)p[1] << 8 | (unsigned long)p[2] << 16 |
         (unsigned long)p[3] << 24;
}

static void put32(unsigned char *p, unsigned long v)
{
  int i;
  for (i = 0; i < 4; ++i) p[i] = (unsigned char)(v >> (8 * i));
}

/* identity - what makes the cache belong to this PEM file */
static void identity(unsigned char *p, const struct stat *st)
{
  put64(p, (unsigned long long)st->st_dev);
  put64(p + 8, (unsigned long long)st->st_ino);
  put64(p + 16, (unsigned long long)st->st_size);
  put64(p + 24, (unsigned long long)st->st_mtim.tv_sec);
  put64(p + 32, (unsigned long long)st->st_mtim.tv_nsec);
  put64(p + 40, (unsigned long long)st->st_ctim.tv_sec);
  put64(p + 48, (unsigned long long)st->st_ctim.tv_nsec);
}
#define IDLEN 56
#define HEADLEN (MAGICLEN + IDLEN + 8)

/* readcache - the cache file into buf if it may be trusted; its length, or -1 */
static long readcache(const char *pem, const struct stat *pst)
{
  char path[512];
  struct stat st;
  long n = 0;
  int fd;
  if (tlscache_path(pem, path, sizeof path) == -1) return -1;
  fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd == -1) return -1;
  if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || st.st_size > TLSCACHE_MAX ||
      (st.st_mode & 022) || (st.st_mode & 044 & ~pst->st_mode) ||
      (st.st_uid != geteuid() && st.st_uid != pst->st_uid)) {
    close(fd);
    return -1;
  }
  while (n < (long)st.st_size) {
    ssize_t r = read(fd, buf + n, (size_t)(st.st_size - n));
    if (r == -1 && errno == EINTR) continue;
    if (r <= 0) break;
    n += r;
  }
  close(fd);
  return n == (long)st.st_size ? n : -1;
}

int tlscache_load(SSL_CTX *ctx, const char *pem)
{
  struct stat st;
  unsigned char id[IDLEN];
  const unsigned char *p, *end;
  unsigned long type, ncerts, len, i;
  long n;
  EVP_PKEY *pk;
  if (stat(pem, &st) == -1 || syms() == -1) return 0;
  if ((n = readcache(pem, &st)) < HEADLEN || memcmp(buf, MAGIC, MAGICLEN)) return 0;
  identity(id, &st);
  if (memcmp(buf + MAGICLEN, id, IDLEN)) return 0;  /* stale: made from another PEM */
  type = get32(buf + MAGICLEN + IDLEN);
  ncerts = get32(buf + MAGICLEN + IDLEN + 4);
  if ((type != EVP_PKEY_RSA && type != EVP_PKEY_EC) || !ncerts || ncerts > TLSCACHE_CERTS) return 0;
  p = buf + HEADLEN;
  end = buf + n;
  /* the key */
  if (end - p < 4 || (len = get32(p)) > (unsigned long)(end - p - 4)) return 0;
  p += 4;
  {
    const unsigned char *q = p;
    void *k = type == EVP_PKEY_RSA ? (void *)f.d2i_RSAPrivateKey(0, &q, (long)len)
                                   : (void *)f.d2i_ECPrivateKey(0, &q, (long)len);
    if (!k || q != p + len || !(pk = f.EVP_PKEY_new())) return 0;
    if (!f.EVP_PKEY_assign(pk, (int)type, k)) { f.EVP_PKEY_free(pk); return 0; }
  }
  p += len;
  /* the certificates: the leaf, then the chain */
  for (i = 0; i < ncerts; ++i) {
    const unsigned char *q;
    X509 *x;
    int ok;
    if (end - p < 4 || (len = get32(p)) > (unsigned long)(end - p - 4)) break;
    p += 4;
    q = p;
    if (!(x = f.d2i_X509(0, &q, (long)len)) || q != p + len) { if (x) X509_free(x); break; }
    p += len;
    if (!i) {
      ok = f.SSL_CTX_use_certificate(ctx, x) == 1 && SSL_CTX_clear_chain_certs(ctx) == 1;
      X509_free(x);
    } else {
      ok = SSL_CTX_add0_chain_cert(ctx, x) == 1;  /* takes x */
      if (!ok) X509_free(x);
    }
    if (!ok) break;
  }
  /* SSL_CTX_use_PrivateKey also checks that the key matches the certificate */
  if (i < ncerts || p != end || f.SSL_CTX_use_PrivateKey(ctx, pk) != 1) {
    f.EVP_PKEY_free(pk);
    ERR_clear_error();
    return 0;
  }
  f.EVP_PKEY_free(pk);
  return 1;
}

/* der - one object's DER appended at buf[*n] with its length; 0, -1 no room or no encoding */
static int der(size_t *n, int (*enc)(const void *, unsigned char **), const void *obj)
{
  unsigned char *p;
  int len = enc(obj, 0);
  if (len <= 0 || (size_t)len + 4 > sizeof buf - *n) return -1;
  p = buf + *n + 4;
  if (enc(obj, &p) != len) return -1;
  put32(buf + *n, (unsigned long)len);
  *n += (size_t)len + 4;
  return 0;
}

static int enc_x509(const void *x, unsigned char **p) { return f.i2d_X509((X509 *)x, p); }
static int enc_key(const void *k, unsigned char **p) { return f.i2d_PrivateKey((EVP_PKEY *)k, p); }

int tlscache_save(SSL_CTX *ctx, const char *pem, const struct stat *st)
{
  char path[512], tmp[600];
  struct stat now;
  STACK_OF(X509) *chain = 0;
  X509 *leaf;
  EVP_PKEY *pk;
  size_t n = HEADLEN, w = 0;
  int type, ncerts, i, fd;
  if (syms() == -1 || tlscache_path(pem, path, sizeof path) == -1) return -1;
  leaf = f.SSL_CTX_get0_certificate(ctx);
  pk = f.SSL_CTX_get0_privatekey(ctx);
  if (!leaf || !pk) return -1;
  type = f.EVP_PKEY_get_base_id(pk);
  if (type != EVP_PKEY_RSA && type != EVP_PKEY_EC) return -1;
  SSL_CTX_get0_chain_certs(ctx, &chain);
  ncerts = 1 + (chain ? f.OPENSSL_sk_num((const OPENSSL_STACK *)chain) : 0);
  if (ncerts > TLSCACHE_CERTS) return -1;
  memcpy(buf, MAGIC, MAGICLEN);
  identity(buf + MAGICLEN, st);
  put32(buf + MAGICLEN + IDLEN, (unsigned long)type);
  put32(buf + MAGICLEN + IDLEN + 4, (unsigned long)ncerts);
  if (der(&n, enc_key, pk) == -1 || der(&n, enc_x509, leaf) == -1) { ERR_clear_error(); return -1; }
  for (i = 1; i < ncerts; ++i)
    if (der(&n, enc_x509, f.OPENSSL_sk_value((const OPENSSL_STACK *)chain, i - 1)) == -1) {
      ERR_clear_error();
      return -1;
    }
  /* the PEM must still be the one we loaded */
  if (stat(pem, &now) == -1 || now.st_ino != st->st_ino || now.st_dev != st->st_dev ||
      now.st_size != st->st_size || now.st_mtim.tv_sec != st->st_mtim.tv_sec ||
      now.st_mtim.tv_nsec != st->st_mtim.tv_nsec || now.st_ctim.tv_sec != st->st_ctim.tv_sec ||
      now.st_ctim.tv_nsec != st->st_ctim.tv_nsec)
    return -1;
  snprintf(tmp, sizeof tmp, "%s.tmp.%lu", path, (unsigned long)getpid());
  fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd == -1) return -1;
  if (!geteuid() && fchown(fd, st->st_uid, st->st_gid) == -1) goto fail;
  if (fchmod(fd, 0600 | (st->st_mode & 044)) == -1) goto fail;
  while (w < n) {
    ssize_t r = write(fd, buf + w, n - w);
    if (r == -1 && errno == EINTR) continue;
    if (r <= 0) goto fail;
    w += (size_t)r;
  }
  if (fsync(fd) == -1 || close(fd) == -1) { fd = -1; goto fail; }
  if (rename(tmp, path) == -1) { unlink(tmp); return -1; }
  return 0;
fail:
  if (fd != -1) close(fd);
  unlink(tmp);
  return -1;
}
