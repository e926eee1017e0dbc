/* tlscache.h - the server certificate chain and key kept decoded (DER) beside the PEM */
#ifndef TLSCACHE_H
#define TLSCACHE_H
#include <sys/stat.h>
#include <openssl/ssl.h>

/* tlscache_path - "x.pem" -> "x.der" (else pem + ".der") into out[size]; 0, -1 too long */
int tlscache_path(const char *pem, char *out, size_t size);

/* tlscache_load - put the chain and key of pem into ctx from its DER cache, when the cache
 * is current (made from this very PEM file: device, inode, size, mtime, ctime), private and
 * well-formed. 1 loaded; 0 no usable cache (use the PEM; ctx may hold a partial setting that
 * the PEM calls replace) */
int tlscache_load(SSL_CTX *ctx, const char *pem);

/* tlscache_save - after ctx was loaded from pem (whose stat before loading is *st): write
 * the cache, atomically (a new file with O_EXCL, fsync, rename), mode 0600 plus the PEM's
 * group and other read bits, owned like the PEM when we are root. Best effort: 0 written, -1 not
 * (read-only control directory, a key type other than RSA or EC, the PEM changed meanwhile) */
int tlscache_save(SSL_CTX *ctx, const char *pem, const struct stat *st);
#endif
