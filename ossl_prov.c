/* ossl_prov.c - linked into mxguard-ossl.so (not into mxguard-smtpd): OpenSSL's default
 * provider with a shorter cipher table. OpenSSL 3.0 builds every algorithm of an operation at
 * its first fetch; SSL_CTX_new fetches a few ciphers and so built all 130-odd of them (3.9 M
 * instructions per STARTTLS, measured with callgrind). This provider is the default provider
 * itself (its init, its implementations, its context) except that the cipher table offers
 * only what TLS and OpenSSL's own machinery may use: AES in CBC/ECB/CTR/GCM/CCM and the
 * stitched CBC-HMAC forms, ChaCha20(-Poly1305), Camellia-CBC, ARIA-GCM, 3DES-CBC (every
 * cipher any TLS 1.2/1.3 suite of OpenSSL 3.0 names, the DRBG's AES-256-CTR/ECB, the
 * encryption of PEM keys) and NULL. Every other operation (digests, MACs, KDFs, key types,
 * signatures, key exchange, decoders, the random generator) is the default provider's,
 * unchanged. mxguard_ossl_init() makes it the only provider of the default library context;
 * it must run after OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG) and before anything
 * fetches an algorithm. */
#include <string.h>
#include <strings.h>
#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/provider.h>

/* the default provider's entry point: global in libcrypto.a (crypto/provider_predefined.c
 * names it), not exported by libcrypto.so.3 - which is why this lives in our own object */
int ossl_default_provider_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
                               const OSSL_DISPATCH **out, void **provctx);
/* the legacy digest table (EVP_get_digestbyname), global in libcrypto.a (crypto/evp/c_alld.c) */
void openssl_add_all_digests_int(void);
int mxguard_ossl_init(void);

#define DISPATCH_MAX 32
#define CIPHERS_MAX 64

static OSSL_FUNC_provider_query_operation_fn *dflt_query;
static OSSL_DISPATCH disp[DISPATCH_MAX];
static OSSL_ALGORITHM ciphers[CIPHERS_MAX];
static int ciphers_made;

static const char *const keep[] = {
  "AES-128-CBC", "AES-192-CBC", "AES-256-CBC", "AES-128-ECB", "AES-192-ECB", "AES-256-ECB",
  "AES-128-CTR", "AES-192-CTR", "AES-256-CTR", "AES-128-GCM", "AES-192-GCM", "AES-256-GCM",
  "AES-128-CCM", "AES-192-CCM", "AES-256-CCM", "AES-128-CBC-HMAC-SHA1", "AES-256-CBC-HMAC-SHA1",
  "AES-128-CBC-HMAC-SHA256", "AES-256-CBC-HMAC-SHA256", "ChaCha20", "ChaCha20-Poly1305",
  "CAMELLIA-128-CBC", "CAMELLIA-192-CBC", "CAMELLIA-256-CBC", "ARIA-128-GCM", "ARIA-192-GCM",
  "ARIA-256-GCM", "DES-EDE3-CBC", "NULL"};

/* kept - the algorithm's first name is in keep[] */
static int kept(const char *names)
{
  size_t i, n = strcspn(names, ":");
  for (i = 0; i < sizeof keep / sizeof keep[0]; ++i)
    if (strlen(keep[i]) == n && !strncasecmp(keep[i], names, n)) return 1;
  return 0;
}

static const OSSL_ALGORITHM *query(void *provctx, int op, int *no_cache)
{
  const OSSL_ALGORITHM *a = dflt_query(provctx, op, no_cache);
  size_t n = 0;
  if (op != OSSL_OP_CIPHER || !a) return a;
  if (!ciphers_made) {
    for (; a->algorithm_names; ++a)
      if (kept(a->algorithm_names) && n + 1 < CIPHERS_MAX) ciphers[n++] = *a;
    memset(&ciphers[n], 0, sizeof ciphers[n]);
    ciphers_made = 1;
  }
  return ciphers;
}

static int init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in, const OSSL_DISPATCH **out,
                void **provctx)
{
  const OSSL_DISPATCH *d;
  size_t n = 0;
  if (!ossl_default_provider_init(handle, in, &d, provctx)) return 0;
  for (; d->function_id; ++d) {
    if (n + 1 >= DISPATCH_MAX) return 0;
    disp[n] = *d;
    if (d->function_id == OSSL_FUNC_PROVIDER_QUERY_OPERATION) {
      dflt_query = (OSSL_FUNC_provider_query_operation_fn *)d->function;
      disp[n].function = (void (*)(void))query;
    }
    ++n;
  }
  if (!dflt_query) return 0;
  memset(&disp[n], 0, sizeof disp[n]);
  *out = disp;
  return 1;
}

/* mxguard_ossl_init - before anything else of OpenSSL: no openssl.cnf, the narrowed provider
 * as the default context's only one, then the legacy digest table. 1 done; 0 the provider
 * is not loaded (OpenSSL then falls back to its default provider at the first fetch).
 * The order saves 0.64 M instructions: OpenSSL's name map, made at the first fetch, copies
 * every name of the legacy digest table (with OBJ_obj2txt for each OID) when the table
 * already exists; made before it, the map holds the providers' names, which include every
 * digest's short name, long name and OID, and the legacy table (X509 signature checks look
 * digests up there by NID) is complete all the same. */
int mxguard_ossl_init(void)
{
  int ok;
  if (!OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG | OPENSSL_INIT_NO_ADD_ALL_CIPHERS |
                           OPENSSL_INIT_NO_ADD_ALL_DIGESTS, 0))
    return 0;
  ok = OSSL_PROVIDER_add_builtin(NULL, "mxguard-default", init) &&
       OSSL_PROVIDER_load(NULL, "mxguard-default") != NULL;
  EVP_MD_free(EVP_MD_fetch(NULL, "SHA2-256", NULL));  /* the name map, now */
  openssl_add_all_digests_int();
  return ok;
}
