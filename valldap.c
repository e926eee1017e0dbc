/* valldap.c - answers valuser.c's qmail-ldap questions: is there an LDAP entry for this
 * address, and does its accountStatus take mail. Reads qmail-ldap's control files:
 * ldapserver (one or more servers, host, host:port or an ldap:// URI, one a line or several
 * on a line), ldapbasedn, ldaplogin/ldappassword (simple bind; anonymous without a password),
 * ldaptimeout (seconds; shortens the search deadline), ldapobjectclass, ldaplocaldelivery
 * (default 1) and aliasdomains (domain:realdomain, used in the filter as qmail-ldap does).
 * The lookup order is qmail-ldap's (qmail-verify.c, qldap-filter.c with DASH_EXT, which we
 * always follow: it only adds addresses that exist): mail or mailAlternateAddress equal to
 * the address, then a-b-c-d-catchall ... a-catchall (the first VALLDAP_EXT_LEVELS dashes),
 * catchall@domain, and the older "@domain" form. accountStatus disabled and deleted are "no
 * such user"; active, noaccess, nopop, anything else or none take mail; two entries for one
 * address are taken as "exists" (qmail-lspawn defers or, with DUPEALIAS, delivers them).
 * All the keys go into one search (an unknown address costs one round trip); its entries are
 * ranked by the first key one of their values equals, which gives what one search per key
 * would; when that cannot be told (over VALLDAP_COMBINED_MAX entries, or an entry the server
 * matched by its own normalisation), the keys are searched one after the other.
 * Every filter value is escaped per RFC 4515. libldap pulls in GnuTLS and SASL, so it is
 * loaded with dlopen() when the first recipient needs LDAP, never at start-up. One
 * connection per session; connect and bind share VALLDAP_CONNECT_MS, the searches of one
 * lookup share VALLDAP_SEARCH_MS (libldap's own poll, bounded by its timeouts). Under an
 * address-space limit below VALLDAP_AS_NEED the library is not loaded (LDAP not usable:
 * valuser.c has no opinion and logs why). After a
 * failure (library missing, server down, timeout, error) every later question in the
 * session fails at once: the caller answers 451, never 5xx. */
#define _GNU_SOURCE  /* memmem */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <ldap.h>
#include "control.h"
#include "valldap.h"

static const char *const libnames[] = {"libldap.so.2", "libldap-2.5.so.0", "libldap-2.4.so.2", 0};

static struct {
  int (*initialize)(LDAP **, const char *);
  int (*set_option)(LDAP *, int, const void *);
  int (*sasl_bind)(LDAP *, const char *, const char *, struct berval *, LDAPControl **,
                   LDAPControl **, int *);
  int (*search_ext)(LDAP *, const char *, int, const char *, char **, int, LDAPControl **,
                    LDAPControl **, struct timeval *, int, int *);
  int (*result)(LDAP *, int, int, struct timeval *, LDAPMessage **);
  int (*parse_result)(LDAP *, LDAPMessage *, int *, char **, char **, char ***, LDAPControl ***,
                      int);
  int (*count_entries)(LDAP *, LDAPMessage *);
  LDAPMessage *(*first_entry)(LDAP *, LDAPMessage *);
  LDAPMessage *(*next_entry)(LDAP *, LDAPMessage *);
  struct berval **(*get_values_len)(LDAP *, LDAPMessage *, const char *);
  void (*value_free_len)(struct berval **);
  int (*msgfree)(LDAPMessage *);
  int (*abandon_ext)(LDAP *, int, LDAPControl **, LDAPControl **);
  int (*unbind_ext)(LDAP *, LDAPControl **, LDAPControl **);
  char *(*err2string)(int);
} f;

static void *lib;
static LDAP *ld;
static int state;       /* 0 not connected, 1 bound, -1 down, -2 unusable (this session) */
static int configured;  /* 0 not read, 1 ldapserver present, 2 absent */
static int settings;    /* the other control files: 0 not read yet, 1 read, -1 unreadable */
static int localdeliv = 1;
static unsigned search_ms = VALLDAP_SEARCH_MS;
static stralloc servers, uris, basedn, login, password, objclass, aliasdoms, flt, key, keys;
static const char *err = "";
static char errbuf[160], loaderr[200];

static int readsettings(void);

int valldap_loaded(void) { return lib != 0; }
const char *valldap_error(void) { return err; }
int valldap_localdelivery(void) { readsettings(); return localdeliv; }

static long long now_ms(void)
{
  struct timeval tv;
  gettimeofday(&tv, 0);
  return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void ms_tv(struct timeval *tv, long long ms)
{
  if (ms < 1) ms = 1;
  tv->tv_sec = (time_t)(ms / 1000);
  tv->tv_usec = (suseconds_t)(ms % 1000 * 1000);
}

void valldap_reset(void)
{
  if (ld && f.unbind_ext) f.unbind_ext(ld, 0, 0);
  ld = 0;
  state = 0;
  configured = settings = 0;
}

static int fail(const char *why, int rc)
{
  err = why;
  if (rc && f.err2string) {
    const char *m = f.err2string(rc);
    size_t n = strlen(why);
    if (n > 60) n = 60;
    memcpy(errbuf, why, n);
    errbuf[n++] = ':';
    errbuf[n++] = ' ';
    strncpy(errbuf + n, m ? m : "", sizeof errbuf - n - 1);
    errbuf[sizeof errbuf - 1] = 0;
    err = errbuf;
  }
  if (ld) f.unbind_ext(ld, 0, 0);
  ld = 0;
  state = -1;
  return VL_TEMP;
}

/* readone - a single-value control file as a C string ("" when absent) */
static int readone(stralloc *sa, const char *fn)
{
  int r = control_readline(sa, fn);
  if (r == -1) return -1;
  if (!r) sa->len = 0;
  return stralloc_0(sa) ? 0 : -1;
}

/* mkuris - "ldap://host:port ..." from ldapserver's entries (lines, each maybe several names) */
static int mkuris(void)
{
  size_t i = 0;
  uris.len = 0;
  while (i < servers.len) {
    const char *e = servers.s + i;
    size_t n = strlen(e), j = 0;
    i += n + 1;
    while (j < n) {
      size_t k;
      while (j < n && (e[j] == ' ' || e[j] == '\t')) ++j;
      for (k = j; k < n && e[k] != ' ' && e[k] != '\t'; ++k) ;
      if (k > j) {
        if (uris.len && !stralloc_cats(&uris, " ")) return -1;
        if (!memmem(e + j, k - j, "://", 3) && !stralloc_cats(&uris, "ldap://")) return -1;
        if (!stralloc_catb(&uris, e + j, k - j)) return -1;
      }
      j = k;
    }
  }
  return stralloc_0(&uris) ? 0 : -1;
}

int valldap_configured(void)
{
  int r;
  if (configured) return configured == 1;
  r = control_readfile(&servers, "control/ldapserver");
  if (r == -1) return -1;
  if (!r) { configured = 2; return 0; }
  configured = 1;
  return 1;
}

/* readsettings - the rest of qmail-ldap's control files, when the first lookup needs them
 * (a session that asks LDAP nothing reads only control/ldapserver) */
static int readsettings(void)
{
  int r, t = 0;
  if (settings) return settings;
  settings = -1;
  if (mkuris() == -1) return err = "out of memory", -1;
#define READ(call, file) if ((r = (call)) == -1) return err = "unable to read " file, -1
  READ(readone(&basedn, "control/ldapbasedn"), "control/ldapbasedn");
  READ(readone(&password, "control/ldappassword"), "control/ldappassword");
  READ(readone(&login, "control/ldaplogin"), "control/ldaplogin");
  if (password.len <= 1) login.len = password.len = 0;  /* qmail-ldap: anonymous */
  READ(control_readline(&objclass, "control/ldapobjectclass"), "control/ldapobjectclass");
  if (!r) objclass.len = 0;
  READ(control_readint(&t, "control/ldaptimeout"), "control/ldaptimeout");
  search_ms = VALLDAP_SEARCH_MS;
  if (r == 1 && t > 0 && (unsigned)t * 1000u < search_ms) search_ms = (unsigned)t * 1000u;
  localdeliv = 1;
  READ(control_readint(&localdeliv, "control/ldaplocaldelivery"), "control/ldaplocaldelivery");
  READ(control_readfile(&aliasdoms, "control/aliasdomains"), "control/aliasdomains");
  if (!r) aliasdoms.len = 0;
#undef READ
  return settings = 1;
}

/* aslimit - the address-space limit (chpst -m, softlimit -m, ulimit -v) when libldap, GnuTLS
 * and SASL cannot fit under it: a half-loaded GnuTLS fails in odd ways, so we do not try */
static int aslimit(void)
{
  struct rlimit rl;
  if (getrlimit(RLIMIT_AS, &rl) == -1 || rl.rlim_cur == RLIM_INFINITY ||
      rl.rlim_cur >= VALLDAP_AS_NEED)
    return 0;
  snprintf(loaderr, sizeof loaderr, "the address-space limit (chpst -m, softlimit -m) of %lu"
           " bytes is too small for libldap: it needs about %lu", (unsigned long)rl.rlim_cur,
           (unsigned long)VALLDAP_AS_NEED);
  return -1;
}

static int load(void)
{
  int i;
  const char *e = 0;
  if (lib) return 0;
  if (aslimit() == -1) return -1;
  for (i = 0; libnames[i] && !lib; ++i)
    if (!(lib = dlopen(libnames[i], RTLD_NOW | RTLD_LOCAL)) && !e) e = dlerror();
  if (!lib) {
    snprintf(loaderr, sizeof loaderr, "cannot load libldap: %s", e ? e : "?");
    return -1;
  }
#define SYM(field, name) if (!(*(void **)&f.field = dlsym(lib, name))) return -1
  SYM(initialize, "ldap_initialize"); SYM(set_option, "ldap_set_option");
  SYM(sasl_bind, "ldap_sasl_bind"); SYM(search_ext, "ldap_search_ext");
  SYM(result, "ldap_result"); SYM(parse_result, "ldap_parse_result");
  SYM(count_entries, "ldap_count_entries"); SYM(first_entry, "ldap_first_entry");
  SYM(next_entry, "ldap_next_entry");
  SYM(get_values_len, "ldap_get_values_len"); SYM(value_free_len, "ldap_value_free_len");
  SYM(msgfree, "ldap_msgfree"); SYM(abandon_ext, "ldap_abandon_ext");
  SYM(unbind_ext, "ldap_unbind_ext"); SYM(err2string, "ldap_err2string");
#undef SYM
  return 0;
}

/* waitfor - the complete result of msgid by the deadline: its LDAP code, or -1 (timeout or
 * lost connection, *rc set) with the message freed; *res kept for searches */
static int waitfor(int msgid, long long deadline, LDAPMessage **res, int *rc)
{
  struct timeval tv;
  int t, code = LDAP_OTHER;
  ms_tv(&tv, deadline - now_ms());
  t = f.result(ld, msgid, LDAP_MSG_ALL, &tv, res);
  if (t <= 0) {
    if (t == 0) f.abandon_ext(ld, msgid, 0, 0);
    if (t == 0 && *res) { f.msgfree(*res); *res = 0; }
    *rc = t == 0 ? LDAP_TIMEOUT : LDAP_SERVER_DOWN;
    return -1;
  }
  if (f.parse_result(ld, *res, &code, 0, 0, 0, 0, 0) != LDAP_SUCCESS) code = LDAP_OTHER;
  return code;
}

static int connect_ldap(void)
{
  static const int v3 = LDAP_VERSION3;
  struct berval cred;
  struct timeval nt;
  LDAPMessage *res = 0;
  long long deadline = now_ms() + VALLDAP_CONNECT_MS;
  size_t i, n = 1;
  int rc, msgid, code;
  if (state == 1) return 0;
  if (state < 0) return state;
  if (uris.len <= 1) { err = "control/ldapserver names no server"; return state = -2; }
  if (load() == -1) { err = loaderr; return state = -2; }
  for (i = 0; i < uris.len; ++i)
    if (uris.s[i] == ' ') ++n;
  if ((rc = f.initialize(&ld, uris.s)) != LDAP_SUCCESS) { fail("ldapserver", rc); return -1; }
  ms_tv(&nt, VALLDAP_CONNECT_MS / (long long)n);  /* each server's share of the deadline */
  f.set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
  f.set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &nt);
  f.set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
  cred.bv_val = password.s;
  cred.bv_len = password.len ? password.len - 1 : 0;
  rc = f.sasl_bind(ld, login.len > 1 ? login.s : "", LDAP_SASL_SIMPLE, &cred, 0, 0, &msgid);
  if (rc != LDAP_SUCCESS) { fail("connect", rc); return -1; }
  code = waitfor(msgid, deadline, &res, &rc);
  if (res) f.msgfree(res);
  if (code == -1) { fail("connect", rc); return -1; }
  if (code != LDAP_SUCCESS) { fail("bind", code); return -1; }
  state = 1;
  return 0;
}

int valldap_escape(stralloc *out, const char *s, size_t len)
{
  static const char hex[] = "0123456789abcdef";
  size_t i;
  for (i = 0; i < len; ++i) {
    unsigned char c = (unsigned char)s[i];
    if (c == '*' || c == '(' || c == ')' || c == '\\' || !c) {
      char e[3];
      e[0] = '\\'; e[1] = hex[c >> 4]; e[2] = hex[c & 15];
      if (!stralloc_catb(out, e, 3)) return 0;
    } else if (!stralloc_append(out, (const char *)&c))
      return 0;
  }
  return 1;
}

int valldap_filter(stralloc *out, const char *k, size_t len)
{
  readsettings();
  out->len = 0;
  if (objclass.len && (!stralloc_cats(out, "(&(objectClass=") ||
                       !valldap_escape(out, objclass.s, objclass.len) || !stralloc_cats(out, ")")))
    return 0;
  if (!stralloc_cats(out, "(|(mail=") || !valldap_escape(out, k, len) ||
      !stralloc_cats(out, ")(mailAlternateAddress=") || !valldap_escape(out, k, len) ||
      !stralloc_cats(out, "))"))
    return 0;
  if (objclass.len && !stralloc_cats(out, ")")) return 0;
  return stralloc_0(out);
}

/* status - accountStatus of entry e: VL_FOUND, VL_DISABLED or VL_DELETED */
static int status(LDAPMessage *e)
{
  struct berval **v = e ? f.get_values_len(ld, e, "accountStatus") : 0;
  int r = VL_FOUND;
  if (!v) return r;
  if (v[0] && v[0]->bv_len == 8 && !strncasecmp(v[0]->bv_val, "disabled", 8)) r = VL_DISABLED;
  if (v[0] && v[0]->bv_len == 7 && !strncasecmp(v[0]->bv_val, "deleted", 7)) r = VL_DELETED;
  f.value_free_len(v);
  return r;
}

/* search - one key: VL_NOTFOUND, VL_FOUND/DISABLED/DELETED, VL_TEMP */
static int search(const char *k, size_t len, long long deadline)
{
  static char attr[] = "accountStatus";
  char *attrs[] = {attr, 0};
  struct timeval tl;
  LDAPMessage *res = 0;
  int rc, msgid, code, n, r;
  if (!valldap_filter(&flt, k, len)) return fail("out of memory", 0);
  ms_tv(&tl, deadline - now_ms());
  if (tl.tv_sec < 1) tl.tv_sec = 1;  /* the server's time limit is in whole seconds */
  rc = f.search_ext(ld, basedn.s, LDAP_SCOPE_SUBTREE, flt.s, attrs, 0, 0, 0, &tl, 2, &msgid);
  if (rc != LDAP_SUCCESS) return fail("search", rc);
  code = waitfor(msgid, deadline, &res, &rc);
  if (code == -1) return fail("search", rc);
  if (code != LDAP_SUCCESS && code != LDAP_SIZELIMIT_EXCEEDED) {
    f.msgfree(res);
    return fail("search", code);
  }
  n = f.count_entries(ld, res);
  r = n <= 0 ? VL_NOTFOUND : n > 1 ? VL_FOUND : status(f.first_entry(ld, res));
  f.msgfree(res);
  return r;
}

/* realdomain - aliasdomains' mapping of domain d, or d itself */
static void realdomain(const char **d, size_t *dlen)
{
  size_t i = 0;
  while (i < aliasdoms.len) {
    const char *e = aliasdoms.s + i;
    size_t n = strlen(e);
    i += n + 1;
    if (n > *dlen && e[*dlen] == ':' && !strncasecmp(e, *d, *dlen) && e[*dlen + 1]) {
      *d = e + *dlen + 1;
      *dlen = n - *dlen - 1;
      return;
    }
  }
}

/* addkey - local part l[0..llen) plus suffix, "@", domain, NUL, to the keys */
static int addkey(const char *l, size_t llen, const char *suffix, const char *d, size_t dlen)
{
  return stralloc_catb(&keys, l, llen) && stralloc_cats(&keys, suffix) &&
         stralloc_cats(&keys, "@") && stralloc_catb(&keys, d, dlen) && stralloc_0(&keys);
}

/* try - local part l[0..llen) plus suffix, "@", domain */
static int try(const char *l, size_t llen, const char *suffix, const char *d, size_t dlen,
               long long deadline)
{
  if (!stralloc_copyb(&key, l, llen) || !stralloc_cats(&key, suffix) ||
      !stralloc_cats(&key, "@") || !stralloc_catb(&key, d, dlen))
    return fail("out of memory", 0);
  return search(key.s, key.len, deadline);
}

/* keyindex - the first of the nkeys keys (NUL-separated in keys) that one of entry e's mail
 * or mailAlternateAddress values equals (case-insensitively), or -1 */
static int keyindex(LDAPMessage *e, int nkeys)
{
  static const char *const names[] = {"mail", "mailAlternateAddress"};
  int best = -1, a;
  for (a = 0; a < 2; ++a) {
    struct berval **v = f.get_values_len(ld, e, names[a]);
    size_t j;
    for (j = 0; v && v[j]; ++j) {
      const char *k = keys.s;
      int i;
      for (i = 0; i < nkeys && (best == -1 || i < best); ++i, k += strlen(k) + 1)
        if (strlen(k) == v[j]->bv_len && !strncasecmp(k, v[j]->bv_val, v[j]->bv_len)) best = i;
    }
    if (v) f.value_free_len(v);
  }
  return best;
}

/* combined - every key in one search (an unknown address costs one round trip, not one per
 * key), answered as the searches one key after the other would be: VL_*, or VL_COMBINED_NO
 * when that cannot be told (too many entries, a value matched only by the server's rules) */
#define VL_COMBINED_NO 99
#define VALLDAP_COMBINED_MAX 16
static int combined(int nkeys, long long deadline)
{
  static char a1[] = "mail", a2[] = "mailAlternateAddress", a3[] = "accountStatus";
  char *attrs[] = {a1, a2, a3, 0};
  struct timeval tl;
  LDAPMessage *res = 0, *e, *pick = 0;
  const char *k = keys.s;
  int i, rc, msgid, code, best = nkeys, n = 0, r;
  flt.len = 0;
  if (objclass.len && (!stralloc_cats(&flt, "(&(objectClass=") ||
                       !valldap_escape(&flt, objclass.s, objclass.len) || !stralloc_cats(&flt, ")")))
    return fail("out of memory", 0);
  if (!stralloc_cats(&flt, "(|")) return fail("out of memory", 0);
  for (i = 0; i < nkeys; ++i, k += strlen(k) + 1)
    if (!stralloc_cats(&flt, "(mail=") || !valldap_escape(&flt, k, strlen(k)) ||
        !stralloc_cats(&flt, ")(mailAlternateAddress=") || !valldap_escape(&flt, k, strlen(k)) ||
        !stralloc_cats(&flt, ")"))
      return fail("out of memory", 0);
  if (!stralloc_cats(&flt, ")") || (objclass.len && !stralloc_cats(&flt, ")")) || !stralloc_0(&flt))
    return fail("out of memory", 0);
  ms_tv(&tl, deadline - now_ms());
  if (tl.tv_sec < 1) tl.tv_sec = 1;
  rc = f.search_ext(ld, basedn.s, LDAP_SCOPE_SUBTREE, flt.s, attrs, 0, 0, 0, &tl,
                    VALLDAP_COMBINED_MAX, &msgid);
  if (rc != LDAP_SUCCESS) return fail("search", rc);
  code = waitfor(msgid, deadline, &res, &rc);
  if (code == -1) return fail("search", rc);
  if (code == LDAP_SIZELIMIT_EXCEEDED) { f.msgfree(res); return VL_COMBINED_NO; }
  if (code != LDAP_SUCCESS) { f.msgfree(res); return fail("search", code); }
  for (e = f.first_entry(ld, res); e; e = f.next_entry(ld, e)) {
    int ki = keyindex(e, nkeys);
    if (ki == -1) { best = -1; break; }  /* matched by rules we do not replay */
    if (ki < best) { best = ki; n = 0; }
    if (ki == best && !n++) pick = e;
  }
  r = best == -1 ? VL_COMBINED_NO : best == nkeys ? VL_NOTFOUND : n > 1 ? VL_FOUND : status(pick);
  f.msgfree(res);
  return r;
}

int valldap_lookup(const char *addr, size_t len)
{
  const char *at = 0, *d;
  size_t i, at_i, dlen, dash[VALLDAP_EXT_LEVELS];
  int ndash = 0, r, k;
  long long deadline;
  if (!configured && valldap_configured() == -1) { err = "unable to read control/ldapserver"; return VL_TEMP; }
  if (configured != 1) { err = "control/ldapserver missing"; return VL_UNUSABLE; }
  if (readsettings() == -1) return VL_TEMP;  /* err names the file */
  if ((r = connect_ldap()) == -2) return VL_UNUSABLE;
  if (r == -1) return VL_TEMP;
  for (i = len; i-- > 0;)
    if (addr[i] == '@') { at = addr + i; break; }
  if (!at) return VL_NOTFOUND;  /* qmail-verify: "address must include host name" */
  at_i = (size_t)(at - addr);
  d = at + 1;
  dlen = len - at_i - 1;
  realdomain(&d, &dlen);
  deadline = now_ms() + search_ms;
  for (i = 0; i < at_i && ndash < VALLDAP_EXT_LEVELS; ++i)
    if (addr[i] == '-' && i) dash[ndash++] = i;
  /* the keys in qmail-ldap's order: address, a-b-catchall ... a-catchall, catchall, @domain */
  keys.len = 0;
  if (!addkey(addr, at_i, "", d, dlen)) return fail("out of memory", 0);
  for (k = ndash; k-- > 0;)
    if (!addkey(addr, dash[k] + 1, "catchall", d, dlen)) return fail("out of memory", 0);
  if (!addkey(addr, 0, "catchall", d, dlen) || !addkey(addr, 0, "", d, dlen))
    return fail("out of memory", 0);
  if (!memchr(addr, 0, len) && (r = combined(ndash + 3, deadline)) != VL_COMBINED_NO) return r;
  /* one key after the other (also for a NUL in the address: keys are C strings) */
  if ((r = try(addr, at_i, "", d, dlen, deadline)) != VL_NOTFOUND) return r;
  for (k = ndash; k-- > 0;)
    if ((r = try(addr, dash[k] + 1, "catchall", d, dlen, deadline)) != VL_NOTFOUND) return r;
  if ((r = try(addr, 0, "catchall", d, dlen, deadline)) != VL_NOTFOUND) return r;
  return try(addr, 0, "", d, dlen, deadline);
}

int valldap_exists(const char *addr, size_t len)
{
  int r = valldap_lookup(addr, len);
  if (r == VL_TEMP || r == VL_UNUSABLE) return -1;
  return r == VL_FOUND;
}
