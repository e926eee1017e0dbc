/* ossl_prov.c - linked into mxguard-ossl.so (not into mxguard-smtpd): OpenSSL's default
 * provider with shorter tables. OpenSSL 3.0 builds every algorithm of an operation at its
 * first fetch: SSL_CTX_new fetches a few ciphers and so built all 130-odd of them (3.9 M
 * instructions per STARTTLS, callgrind), TLS's HMAC built every MAC, its PRF every KDF, and
 * reading the certificate's public key every decoder. This provider is the default provider
 * itself (its init, its implementations, its context), except that the tables of ciphers,
 * MACs, KDFs and decoders offer only what TLS and OpenSSL's own machinery may use (the lists
 * below). Digests, key types, signatures, key exchange, KEMs, encoders and the random
 * generator are the default provider's tables, untouched. tests/integration/test_tlsown.py
 * checks that every TLS 1.2 and 1.3 suite negotiates exactly as with libssl.so.3.
 * mxguard_ossl_init() makes it the only provider of the default library context; it must run
 * before any other OpenSSL call. */
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
#define TABLE_MAX 64

static OSSL_FUNC_provider_query_operation_fn *dflt_query;
static OSSL_DISPATCH disp[DISPATCH_MAX];

/* the ciphers of every TLS 1.2/1.3 suite of OpenSSL 3.0, the DRBG's AES-256-CTR and -ECB,
 * 3DES and AES-CBC for PEM's encrypted keys, and NULL (eNULL suites, when configured) */
static const char *const ciphers[] = {
  "AES-128-CBC", "AES-256-CBC", "AES-128-ECB", "AES-256-ECB", "AES-128-CTR", "AES-256-CTR",
  "AES-128-GCM", "AES-256-GCM", "AES-128-CCM", "AES-256-CCM", "AES-128-CBC-HMAC-SHA1",
  "AES-256-CBC-HMAC-SHA1", "AES-128-CBC-HMAC-SHA256", "AES-256-CBC-HMAC-SHA256",
  "ChaCha20-Poly1305", "CAMELLIA-128-CBC", "CAMELLIA-256-CBC", "ARIA-128-GCM", "ARIA-256-GCM",
  "DES-EDE3-CBC", "NULL", 0};
/* TLS's MAC, and the KDFs of TLS 1.2 and 1.3 */
static const char *const macs[] = {"HMAC", 0};
static const char *const kdfs[] = {"TLS1-PRF", "HKDF", "TLS13-KDF", 0};
/* decoders: all but the Microsoft key formats (we read PEM and DER only) and the keys that
 * cannot sign - DH, X9.42 DH, X25519, X448: no certificate a TLS server or client
 * authenticates with, nor a CA that signed one, holds such a key, and we read no DH
 * parameters (TLS 1.3 key shares are not decoded) */
static const char *const decoders_not[] = {"input=msblob", "input=pvk", 0};
static const char *const decoders_not_names[] = {"DH", "DHX", "X25519", "X448", 0};

static struct filter {
  int op;
  const char *const *names;  /* keep these (by first name), or */
  const char *const *props;  /* drop those whose properties contain one of these */
  const char *const *drop;   /* and those with one of these first names */
  int made;
  OSSL_ALGORITHM table[TABLE_MAX];
} filters[] = {
  {OSSL_OP_CIPHER, ciphers, 0, 0, 0, {{0}}},
  {OSSL_OP_MAC, macs, 0, 0, 0, {{0}}},
  {OSSL_OP_KDF, kdfs, 0, 0, 0, {{0}}},
  {OSSL_OP_DECODER, 0, decoders_not, decoders_not_names, 0, {{0}}},
};

/* kept - the algorithm stays in the narrowed table */
static int kept(const struct filter *f, const OSSL_ALGORITHM *a)
{
  size_t i, n = strcspn(a->algorithm_names, ":");
  if (f->names) {
    for (i = 0; f->names[i]; ++i)
      if (strlen(f->names[i]) == n && !strncasecmp(f->names[i], a->algorithm_names, n)) return 1;
    return 0;
  }
  for (i = 0; f->props[i]; ++i)
    if (a->property_definition && strstr(a->property_definition, f->props[i])) return 0;
  for (i = 0; f->drop[i]; ++i)
    if (strlen(f->drop[i]) == n && !strncasecmp(f->drop[i], a->algorithm_names, n)) return 0;
  return 1;
}

static const OSSL_ALGORITHM *query(void *provctx, int op, int *no_cache)
{
  const OSSL_ALGORITHM *a = dflt_query(provctx, op, no_cache);
  struct filter *f = 0;
  size_t i, n = 0;
  if (!a) return a;
  for (i = 0; i < sizeof filters / sizeof filters[0]; ++i)
    if (filters[i].op == op) f = &filters[i];
  if (!f) return a;
  if (!f->made) {
    for (; a->algorithm_names; ++a)
      if (kept(f, a) && n + 1 < TABLE_MAX) f->table[n++] = *a;
    memset(&f->table[n], 0, sizeof f->table[n]);
    f->made = 1;
  }
  return f->table;
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
