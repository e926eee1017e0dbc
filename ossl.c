/* ossl.c - loads OpenSSL when a session first needs TLS. mxguard-smtpd is linked statically;
 * linking libssl and libcrypto into it too made the binary 4.6 MB of text, and on kernels with
 * large page-cache folios every plain session then had 1.75 MB resident instead of 0.92 MB,
 * though it never ran a line of OpenSSL. So the library is dlopen()ed (it gets its own libc
 * namespace, as valsql.c's libmariadb does) and tls.c calls it through these pointers.
 * Preferred is mxguard-ossl.so from beside the binary (the Makefile links Debian's libssl.a and
 * libcrypto.a into it with -Bsymbolic, and ossl_prov.c's narrowed provider): loading it costs
 * 0.5 M instructions against 3.2 M for libssl.so.3 and libcrypto.so.3; without it, those. */
#include <dlfcn.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#define OSSL_IMPL
#include "ossl.h"

struct ossl ossl;
static void *lib;

void *ossl_sym(const char *name) { return lib ? dlsym(lib, name) : 0; }

/* ossl_errstrings - the error texts, loaded when an error is to be shown: loading them at
 * initialisation costs every STARTTLS about 1.2 M instructions. OpenSSL's own loader cannot
 * run after OPENSSL_INIT_NO_LOAD_*_STRINGS, the per-library ones can; DECODER and PROV have
 * none (their reasons show as numbers, their library by name). */
void ossl_errstrings(void)
{
  static const char *const loaders[] = {
    "ERR_load_ERR_strings", "ERR_load_SSL_strings", "ERR_load_PEM_strings", "ERR_load_X509_strings",
    "ERR_load_X509V3_strings", "ERR_load_ASN1_strings", "ERR_load_EVP_strings", "ERR_load_EC_strings",
    "ERR_load_RSA_strings", "ERR_load_BIO_strings", "ERR_load_BN_strings", "ERR_load_BUF_strings",
    "ERR_load_CRYPTO_strings", "ERR_load_OBJ_strings", "ERR_load_RAND_strings", "ERR_load_DH_strings",
    "ERR_load_DSA_strings", "ERR_load_OSSL_STORE_strings", "ERR_load_PKCS12_strings",
    "ERR_load_PKCS7_strings", "ERR_load_CONF_strings", "ERR_load_KDF_strings"};
  static int done;
  size_t i;
  if (done || !lib) return;
  done = 1;
  for (i = 0; i < sizeof loaders / sizeof loaders[0]; ++i) {
    int (*load)(void);
    *(void **)&load = dlsym(lib, loaders[i]);
    if (load) load();
  }
}

static int own_stale;

#ifdef OSSL_SYSINC
/* the system's libssl.so.3 and libcrypto.so.3 as they were when mxguard-ossl.so was linked
 * beside this binary (path, size, mtime: the Makefile's mxguard-ossl-sys.inc) */
static const struct syslib {
  const char *path;
  long long size, mtime;
} syslibs[] = {
#include OSSL_SYSINC
};

/* stale - 1: the system's OpenSSL is not the one mxguard-ossl.so was built from (an update,
 * perhaps a security fix, was installed since): the system's libssl.so.3 is used until
 * mxguard-ossl.so and mxguard-smtpd are built and installed again. 0: the same, or there is
 * no system OpenSSL to prefer. One stat() per library. */
static int stale(void)
{
  size_t i;
  struct stat st;
  for (i = 0; i < sizeof syslibs / sizeof syslibs[0]; ++i)
    if (stat(syslibs[i].path, &st) == 0 &&
        ((long long)st.st_size != syslibs[i].size || (long long)st.st_mtime != syslibs[i].mtime))
      return 1;
  return 0;
}
#else
static int stale(void) { return 0; }
#endif

/* own - mxguard-ossl.so from the directory of the running binary (Makefile: libssl.a and
 * libcrypto.a linked into one object with -Bsymbolic, so loading it binds ~130 symbols rather
 * than libssl.so.3 and libcrypto.so.3's ~3 700), or 0 */
static void *own(void)
{
  char path[4096];
  ssize_t n = readlink("/proc/self/exe", path, sizeof path - sizeof OSSL_OWN);
  char *slash;
  if (n <= 0) return 0;
  path[n] = 0;
  if (!(slash = strrchr(path, '/'))) return 0;
  memcpy(slash + 1, OSSL_OWN, sizeof OSSL_OWN);
  if (access(path, F_OK) == -1) return 0;
  if (stale()) {
    own_stale = 1;
    return 0;
  }
  return dlopen(path, RTLD_NOW | RTLD_LOCAL);
}

int ossl_own_stale(void) { return own_stale; }

int ossl_narrow(void)
{
  int (*init)(void);
  *(void **)&init = ossl_sym("mxguard_ossl_init");
  return init ? init() : 0;
}

int ossl_load(const char **err)
{
  static const char *failed;
  if (lib) return 0;
  if (failed) { *err = failed; return -1; }
  if (!(lib = own()) && !(lib = dlopen(OSSL_LIB, RTLD_NOW | RTLD_LOCAL))) {
    failed = "cannot load " OSSL_LIB;
    *err = failed;
    return -1;
  }
#define OSSL_SYM(name) \
  if (!(*(void **)&ossl.name = dlsym(lib, #name))) { failed = "no " #name " in " OSSL_LIB; }
  OSSL_FUNCS(OSSL_SYM)
#undef OSSL_SYM
  if (failed) { dlclose(lib); lib = 0; *err = failed; return -1; }
  return 0;
}
