/* ossl.c - loads OpenSSL when a session first needs TLS. mxguard-smtpd is linked statically;
 * linking libssl and libcrypto into it too made the binary 4.6 MB of text, and on kernels with
 * large page-cache folios every plain session then had 1.75 MB resident instead of 0.92 MB,
 * though it never ran a line of OpenSSL. So the library is dlopen()ed (it gets its own libc
 * namespace, as valsql.c's libmariadb does) and tls.c calls it through these pointers. */
#include <dlfcn.h>
#include <stddef.h>
#define OSSL_IMPL
#include "ossl.h"

struct ossl ossl;
static void *lib;

void *ossl_sym(const char *name) { return lib ? dlsym(lib, name) : 0; }

int ossl_load(const char **err)
{
  static const char *failed;
  if (lib) return 0;
  if (failed) { *err = failed; return -1; }
  if (!(lib = dlopen(OSSL_LIB, RTLD_NOW | RTLD_LOCAL))) {
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
