/* store.c - state that outlives a connection: leaky buckets for rates, concurrency counts and
 * the greylist, shared by every smtpd process of a host (LMDB) or of many hosts (Redis).
 *
 * Nothing is opened until a check needs it, so a session with no rate, greylist or budget
 * configured never touches the store. Reads control/redis (Redis when present), else
 * control/storedir (the LMDB directory, default "state" under the qmail home) and
 * control/storemapsize (MB, default 32). Time is the wall clock in ms (hosts share it).
 *
 * LMDB: one environment opened per process with MDB_NOSYNC (a counter lost in an OS crash is
 * harmless; nothing ever calls fsync) and MDB_WRITEMAP (pages are changed in the map, not in
 * heap copies: a damaged file cannot make LMDB write over our heap), maxreaders STORE_READERS,
 * stale reader slots cleared at open (mdb_reader_check), its descriptors close-on-exec. Faults
 * and failed assertions inside LMDB on a damaged file are caught (guard()). Every call runs first in a
 * read-only transaction: a session that changes nothing writes nothing; one increment per
 * counter may wait for the session's next write or its end (see defer()), the rest is one
 * write transaction per call. Expired records are removed by `mxguard-store purge` and, when
 * the map is full, by the writer that found it full. Concurrency members are records
 * "key|host:pid"; a member whose process is gone (SIGKILL) is removed by the next process
 * that counts; a writer killed holding the lock is recovered by LMDB's robust mutex.
 * Redis: hiredis dlopen()ed, non-blocking, every round trip under STORE_TIMEOUT_MS, each op
 * one Lua script (atomic), keys with TTLs, hash tag = the key's second part so that the
 * keys of one decision share a Redis Cluster slot; MOVED and ASK are followed.
 * Any failure: logged once, the store is off for the rest of the session, callers fail
 * open (never a 5xx because of the store). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <dlfcn.h>
#include <lmdb.h>
#include <stralloc.h>
#include "control.h"
#include "log.h"
#include "store.h"

#define STORE_READERS 1022
#define STORE_TIMEOUT_MS 300
#define REDIS_LIB "libhiredis.so.0.14"

static const char *backend;   /* "lmdb", "redis" */
static int broken;            /* store unusable for this session */
static char host[64];

long long (*store_clock)(void);

long long store_now_ms(void)
{
  struct timespec ts;
  if (store_clock) return store_clock();
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *store_backend(void) { return backend; }

static void fail(const char *what, const char *detail)
{
  if (!broken && log_on(LOG_ERROR)) {
    log_start("store");
    log_str("result", "failopen");
    log_str("backend", backend ? backend : "none");
    log_str("error", what);
    if (detail) log_clients("detail", detail);
    log_end();
  }
  broken = 1;
}

/* ---------------------------------------------------------------- keys */

char *store_key(char *out, const char *const *parts, int n)
{
  static const char hex[] = "0123456789ABCDEF";
  size_t len = 0;
  uint32_t h = 2166136261u;
  int i, cut = 0;
  for (i = 0; i < n; ++i) {
    const unsigned char *p = (const unsigned char *)parts[i];
    if (i) { if (len < STORE_KEY_MAX) out[len++] = ':'; else cut = 1; }
    for (; *p; ++p) {
      unsigned char c = *p;
      h = (h ^ c) * 16777619u;
      if (c >= 'A' && c <= 'Z') c = (unsigned char)(c + 32);  /* one bucket whatever the case */
      if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
          c == '.' || c == '@' || c == '+' || c == '_' || c == '-') {
        if (len < STORE_KEY_MAX) out[len++] = (char)c; else cut = 1;
      } else if (len + 3 <= STORE_KEY_MAX) {
        out[len++] = '%'; out[len++] = hex[c >> 4]; out[len++] = hex[c & 15];
      } else cut = 1;
    }
    h = (h ^ ':') * 16777619u;
  }
  if (cut) {  /* the tail becomes a hash of the whole: distinct long keys stay distinct */
    len = STORE_KEY_MAX - 9;
    out[len++] = '#';
    for (i = 7; i >= 0; --i) out[len++] = hex[(h >> (i * 4)) & 15];
  }
  out[len] = 0;
  return out;
}

/* ---------------------------------------------------------------- the algorithms */

#define rec store_rec

/* bucket - leak since last, then apply op; the clock going back leaks nothing */
static void bucket(struct rec *r, int have, struct store_op *op, long long now)
{
  double lvl = have ? r->a : 0;
  long long last = have ? r->b : now;
  long w = op->window_s > 0 ? op->window_s : 1;
  double lim = op->limit > 0 ? (double)op->limit : 1;
  if (now > last) {
    lvl -= (double)(now - last) * lim / ((double)w * 1000.0);
    if (lvl < 0) lvl = 0;
    last = now;
  }
  op->ok = 1;
  if (op->type == STORE_TAKE) {
    if (lvl + (double)op->n <= lim + 1e-9) lvl += (double)op->n; else op->ok = 0;
  } else if (op->type == STORE_PEEK) op->ok = lvl + 1 <= lim + 1e-9;
  else lvl += (double)op->n;
  op->level = (long)(lvl + 0.999);
  r->a = lvl;
  r->b = last;
  /* drained after lvl*w/lim seconds */
  r->expire_s = last / 1000 + (int64_t)(lvl * (double)w / lim) + 2;
}

/* grey - postgrey's decision over the triplet and client records */
static long grey(struct rec *t, int *havet, struct rec *c, int *havec, const struct store_grey *g,
                 long long now, long *delayed)
{
  int64_t s = now / 1000;
  *delayed = 0;
  if (*havec && c->expire_s <= s) *havec = 0;
  if (*havet && t->expire_s <= s) *havet = 0;
  if (!*havec) { c->a = 0; c->b = 0; }
  if (g->autoallow > 0 && *havec && c->a >= (double)g->autoallow) {
    c->expire_s = s + g->expire_s;
    return 0;
  }
  if (!*havet) {  /* first sight: the retry must come within retry_s */
    t->a = (double)s; t->b = 0; t->expire_s = s + g->retry_s;
    *havet = 1;
    return g->delay_s > 0 ? g->delay_s : 1;
  }
  if (!t->b) {
    if (t->a > (double)s) t->a = (double)s;  /* clock went back: wait again, never forever */
    if ((double)s < t->a + (double)g->delay_s) return (long)(t->a + (double)g->delay_s - (double)s);
    t->b = 1;
    *delayed = (long)((double)s - t->a);
  }
  t->expire_s = s + g->expire_s;
  if (s >= c->b + 3600 || s < c->b) { c->a += 1; c->b = s; }  /* once an hour */
  c->expire_s = s + g->expire_s;
  *havec = 1;
  return 0;
}

static int pid_alive(long pid)
{
  return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

/* member - "key|host:pid" for this process */
static size_t member(char *out, size_t size, const char *key)
{
  char num[24];
  size_t n;
  long pid = (long)getpid();
  int i = 0;
  do { num[i++] = (char)('0' + pid % 10); pid /= 10; } while (pid && i < 23);
  size_t kl = strlen(key), hl = strlen(host);
  if (kl + hl + 2 + (size_t)i >= size) { out[0] = 0; return 0; }
  memcpy(out, key, kl);
  out[kl] = '|';
  memcpy(out + kl + 1, host, hl);
  out[kl + 1 + hl] = ':';
  n = kl + hl + 2;
  while (i) out[n++] = num[--i];
  out[n] = 0;
  return n;
}

/* ---------------------------------------------------------------- LMDB */

static MDB_env *env;
static MDB_dbi dbi;

const char *store_dir(void)
{
  static stralloc sa;
  if (control_readline(&sa, "control/storedir") == 1 && sa.len && stralloc_0(&sa)) return sa.s;
  return "state";
}

static void assertion(MDB_env *e, const char *msg);

static int lmdb_open(void)
{
  int rc, mb = 32;
  unsigned tries;
  const char *dir = store_dir();
  if (control_readint(&mb, "control/storemapsize") == -1 || mb <= 0) mb = 32;
  for (tries = 0; tries < 3; ++tries) {
    if ((rc = mdb_env_create(&env))) break;
    mdb_env_set_assert(env, assertion);
    mdb_env_set_mapsize(env, (size_t)mb << 20);
    mdb_env_set_maxreaders(env, STORE_READERS);
    rc = mdb_env_open(env, dir, MDB_NOSYNC | MDB_NOTLS | MDB_WRITEMAP, 0600);
    if (!rc) {
      int dead = 0, fd;
      if (!mdb_env_get_fd(env, &fd)) fcntl(fd, F_SETFD, FD_CLOEXEC);  /* not for qmail-queue */
      mdb_reader_check(env, &dead);
      return 0;
    }
    mdb_env_close(env);
    env = 0;
    if (rc != EAGAIN && rc != EBUSY) break;  /* another process opening at this instant */
  }
  fail("open", mdb_strerror(rc));
  return -1;
}

/* sane - a record read from the file is believable (a damaged one is taken as absent) */
static int sane(const struct rec *r)
{
  return r->a >= 0 && r->a < 1e15 && r->b >= 0 && r->b < 100000000000000LL &&
         r->expire_s >= 0 && r->expire_s < 100000000000LL;
}

/* purge - drop expired records (bounded: a writer that finds the map full) */
static long purge(MDB_txn *txn, long max)
{
  MDB_cursor *cur;
  MDB_val k, v;
  long n = 0;
  int64_t now = store_now_ms() / 1000;
  int rc;
  if (mdb_cursor_open(txn, dbi, &cur)) return -1;
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); !rc; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    struct rec r;
    if (v.mv_size != sizeof r) continue;
    memcpy(&r, v.mv_data, sizeof r);
    if (sane(&r) && r.expire_s > now) continue;
    if (mdb_cursor_del(cur, 0)) break;
    if (++n == max) break;
  }
  mdb_cursor_close(cur);
  return n;
}

static int get(MDB_txn *txn, const char *key, struct rec *r)
{
  MDB_val k = {strlen(key), (void *)key}, v;
  if (mdb_get(txn, dbi, &k, &v) || v.mv_size != sizeof *r) return 0;
  memcpy(r, v.mv_data, sizeof *r);
  return sane(r);
}

static int put(MDB_txn *txn, const char *key, const struct rec *r)
{
  MDB_val k = {strlen(key), (void *)key}, v = {sizeof *r, (void *)r};
  return mdb_put(txn, dbi, &k, &v, 0);
}

/* conc - count the live members of key (removing the dead), join or leave */
static int conc(MDB_txn *txn, struct store_op *op, long long now)
{
  char me[STORE_KEY_MAX + 100];
  size_t klen = strlen(op->key), hlen = strlen(host);
  MDB_cursor *cur;
  MDB_val k, v;
  long count = 0;
  int rc, self = 0;
  member(me, sizeof me, op->key);
  if (op->type == STORE_LEAVE) {
    MDB_val mk = {strlen(me), me};
    rc = mdb_del(txn, dbi, &mk, 0);
    op->ok = 1;
    return rc == MDB_NOTFOUND ? 0 : rc;
  }
  if ((rc = mdb_cursor_open(txn, dbi, &cur))) return rc;
  k.mv_size = klen + 1;
  k.mv_data = me;  /* "key|" */
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); !rc;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    const char *kk = k.mv_data;
    struct rec r;
    int dead = 0;
    if (k.mv_size <= klen + 1 || memcmp(kk, me, klen + 1)) break;
    if (v.mv_size == sizeof r) {
      memcpy(&r, v.mv_data, sizeof r);
      dead = !sane(&r) || r.expire_s * 1000 <= now;
    }
    if (!dead && k.mv_size > klen + 1 + hlen + 1 && !memcmp(kk + klen + 1, host, hlen) &&
        kk[klen + 1 + hlen] == ':') {
      long pid = 0;
      size_t i;
      for (i = klen + 2 + hlen; i < k.mv_size && kk[i] >= '0' && kk[i] <= '9'; ++i)
        pid = pid * 10 + (kk[i] - '0');
      if (pid == (long)getpid()) self = 1;
      else dead = !pid_alive(pid);
    }
    if (dead) { if ((rc = mdb_cursor_del(cur, 0))) break; continue; }
    ++count;
  }
  mdb_cursor_close(cur);
  if (rc && rc != MDB_NOTFOUND) return rc;
  op->ok = self || count < op->limit;
  if (op->ok && !self) {
    struct rec r = {0, 0, now / 1000 + (op->window_s > 0 ? op->window_s : 3600)};
    if ((rc = put(txn, me, &r))) return rc;
    ++count;
  }
  op->level = count;
  return 0;
}

/* Writes are what cost (a write transaction copies the pages on the path to each record it
 * changes): every call first runs in a read-only transaction; increments that can wait
 * (op->atonce 0) are kept in pend[] and written together with the next write transaction
 * (at the latest when the session ends), and a call that must write (concurrency, a
 * connection count, a greylist entry that changes) runs again in a write transaction. */
#define NEEDWRITE (-30600)   /* not an LMDB error code */
#define PEND_MAX 8
static struct pend { char key[STORE_KEY_MAX + 1]; long n, limit, window_s; long long t; } pend[PEND_MAX];
static int npend;
static int rdonly;           /* the callback runs in the read-only transaction */
static MDB_txn *rtxn;
static int dbi_open;

/* replay - this session's unwritten increments of key onto r, each at its own time */
static int replay(const char *key, struct rec *r, int have)
{
  int i;
  for (i = 0; i < npend; ++i)
    if (!key || !strcmp(pend[i].key, key)) {
      struct store_op add;
      memset(&add, 0, sizeof add);
      add.type = STORE_ADD; add.key = pend[i].key; add.n = pend[i].n;
      add.limit = pend[i].limit; add.window_s = pend[i].window_s;
      bucket(r, have, &add, pend[i].t);
      have = 1;
    }
  return have;
}

/* defer - keep one increment of a key unwritten; a second one of the same key is written at
 * once with the first, so that concurrent sessions of a client see all but one of each
 * other's increments (an overshoot of at most one per session and counter) */
static int defer(const struct store_op *op, long n)
{
  int i;
  if (npend == PEND_MAX) return NEEDWRITE;
  for (i = 0; i < npend; ++i) if (!strcmp(pend[i].key, op->key)) return NEEDWRITE;
  memcpy(pend[npend].key, op->key, strlen(op->key) + 1);
  pend[npend].n = n;
  pend[npend].limit = op->limit;
  pend[npend].window_s = op->window_s;
  pend[npend].t = store_now_ms();
  ++npend;
  return 0;
}

static int flush(MDB_txn *txn, long long now)
{
  int i, j, rc = 0;
  for (i = 0; i < npend && !rc; ++i) {
    struct rec r;
    int have;
    for (j = 0; j < i; ++j) if (!strcmp(pend[j].key, pend[i].key)) break;
    if (j < i) continue;  /* written with its first occurrence */
    have = get(txn, pend[i].key, &r);
    if (have && r.expire_s * 1000 < now - 1000) have = 0;
    replay(pend[i].key, &r, have);
    rc = put(txn, pend[i].key, &r);
  }
  return rc;
}

static int lmdb_ops(MDB_txn *txn, struct store_op *ops, int n, long long now)
{
  int i, rc = 0, npend0 = npend;
  for (i = 0; i < n && !rc; ++i) {
    struct store_op *op = ops + i;
    if (op->type == STORE_ENTER || op->type == STORE_LEAVE) {
      rc = rdonly ? NEEDWRITE : conc(txn, op, now);
    } else {
      struct rec r;
      int have = get(txn, op->key, &r);
      if (have && r.expire_s * 1000 < now - 1000) have = 0;
      if (rdonly) have = replay(op->key, &r, have);  /* this session's unwritten increments */
      bucket(&r, have, op, now);
      if (op->type == STORE_PEEK || (op->type == STORE_TAKE && !op->ok)) continue;
      if (!rdonly) rc = put(txn, op->key, &r);
      else rc = op->atonce ? NEEDWRITE : defer(op, op->n);
    }
  }
  if (rc == NEEDWRITE) npend = npend0;
  return rc;
}

/* lmdb_txn - fn in the read-only transaction first (tryread), then if it must write, in a
 * write transaction that also writes pend[]; a full map is purged once and retried */
static int lmdb_txn0(int (*fn)(MDB_txn *, void *), void *ctx, int tryread)
{
  int attempt, rc = 0;
  if (tryread) {
    rc = rtxn ? mdb_txn_renew(rtxn) : mdb_txn_begin(env, 0, MDB_RDONLY, &rtxn);
    if (rc) { if (!rtxn) { fail("read", mdb_strerror(rc)); return -1; } }
    else {
      if (!dbi_open && !(rc = mdb_dbi_open(rtxn, 0, 0, &dbi))) dbi_open = 1;
      rdonly = 1;
      if (!rc) rc = fn(rtxn, ctx);
      rdonly = 0;
      mdb_txn_reset(rtxn);
      if (!rc) return 0;
      if (rc != NEEDWRITE) { fail("read", mdb_strerror(rc)); return -1; }
    }
  }
  for (attempt = 0; attempt < 2; ++attempt) {
    MDB_txn *txn;
    if ((rc = mdb_txn_begin(env, 0, 0, &txn))) break;
    if (!dbi_open && !(rc = mdb_dbi_open(txn, 0, 0, &dbi))) dbi_open = 1;
    if (!rc && !(rc = flush(txn, store_now_ms())) && !(rc = fn(txn, ctx))) {
      if (!(rc = mdb_txn_commit(txn))) { npend = 0; return 0; }
    } else mdb_txn_abort(txn);
    if (rc != MDB_MAP_FULL) break;
    if (!mdb_txn_begin(env, 0, 0, &txn)) {
      if (purge(txn, 100000) > 0) { if (mdb_txn_commit(txn)) break; }
      else { mdb_txn_abort(txn); break; }
    }
  }
  fail("update", mdb_strerror(rc));
  return -1;
}

/* A damaged data file can make LMDB read through a bad page pointer: SIGSEGV or SIGBUS in
 * the middle of a call. Every LMDB call runs under this guard; a fault ends the call, the
 * store is marked damaged (never touched again by this process, not even to close it: a
 * writer's lock left held is recovered by the next writer through LMDB's robust mutex) and
 * the session goes on without it (fail open). */
static sigjmp_buf crashjb;
static volatile sig_atomic_t guarded;
static int damaged;

static void crashed(int sig)
{
  if (guarded) siglongjmp(crashjb, sig);
  signal(sig, SIG_DFL);
  raise(sig);
}

/* assertion - LMDB found its file inconsistent: logged as one line, then out of the call
 * (LMDB would print a raw line on fd 2 and abort) */
static void assertion(MDB_env *e, const char *msg)
{
  (void)e;
  fail("damaged", msg);
  if (guarded) siglongjmp(crashjb, SIGABRT);
}

static int guard(int (*f)(void *), void *arg)
{
  static const int sigs[3] = {SIGSEGV, SIGBUS, SIGABRT};
  struct sigaction sa, old[3];
  int rc, i;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = crashed;
  sigemptyset(&sa.sa_mask);
  for (i = 0; i < 3; ++i) sigaction(sigs[i], &sa, &old[i]);
  if (sigsetjmp(crashjb, 1)) {
    guarded = 0;
    for (i = 0; i < 3; ++i) sigaction(sigs[i], &old[i], 0);
    damaged = 1;
    fail("damaged", "the store faulted while reading it (SIGSEGV/SIGBUS/SIGABRT)");
    return -1;
  }
  guarded = 1;
  rc = f(arg);
  guarded = 0;
  for (i = 0; i < 3; ++i) sigaction(sigs[i], &old[i], 0);
  return rc;
}

struct txnargs { int (*fn)(MDB_txn *, void *); void *ctx; int tryread; };
static int txn_cb(void *x)
{
  struct txnargs *a = x;
  return lmdb_txn0(a->fn, a->ctx, a->tryread);
}

static int lmdb_txn(int (*fn)(MDB_txn *, void *), void *ctx, int tryread)
{
  struct txnargs a = {fn, ctx, tryread};
  if (damaged) return -1;
  return guard(txn_cb, &a);
}

static int open_cb(void *x) { (void)x; return lmdb_open(); }

struct runctx { struct store_op *ops; int n; long long now; };
static int run_cb(MDB_txn *txn, void *c)
{
  struct runctx *r = c;
  return lmdb_ops(txn, r->ops, r->n, r->now);
}

/* changed - a record must be written: new, changed, or its expiry moved by a day or more
 * (a passed triplet seen again within a day costs no write) */
static int changed(int had, const struct rec *a, int has, const struct rec *b)
{
  if (!has) return 0;
  if (!had) return 1;
  return a->a != b->a || a->b != b->b || b->expire_s - a->expire_s >= 86400 ||
         b->expire_s < a->expire_s;
}

struct greyctx { const char *t, *c; const struct store_grey *g; long left, delayed; };
static int grey_cb(MDB_txn *txn, void *x)
{
  struct greyctx *g = x;
  struct rec t, c, t0, c0;
  int ht = get(txn, g->t, &t), hc = get(txn, g->c, &c), rc, ht0 = ht, hc0 = hc;
  memcpy(&t0, &t, sizeof t);
  memcpy(&c0, &c, sizeof c);
  g->left = grey(&t, &ht, &c, &hc, g->g, store_now_ms(), &g->delayed);
  if (ht0 && t0.expire_s <= store_now_ms() / 1000) ht0 = 0;
  if (hc0 && c0.expire_s <= store_now_ms() / 1000) hc0 = 0;
  if (changed(ht0, &t0, ht, &t) || changed(hc0, &c0, hc, &c)) {
    if (rdonly) return NEEDWRITE;
    if ((rc = put(txn, g->t, &t))) return rc;
    if (hc && (rc = put(txn, g->c, &c))) return rc;
  }
  return 0;
}

/* ---------------------------------------------------------------- Redis */

#include <hiredis/hiredis.h>

static struct {
  redisContext *(*connect_tcp)(const char *, int);
  redisContext *(*connect_unix)(const char *);
  int (*append_argv)(redisContext *, int, const char **, const size_t *);
  int (*buf_write)(redisContext *, int *);
  int (*buf_read)(redisContext *);
  int (*get_reply)(redisContext *, void **);
  void (*free_reply)(void *);
  void (*free_ctx)(redisContext *);
} rl;

#define NODES_MAX 8
static struct node { char addr[128]; redisContext *c; } nodes[NODES_MAX];
static stralloc redis_conf, password, prefix;
static long timeout_ms = STORE_TIMEOUT_MS;

static int redis_load(void)
{
  void *lib = dlopen(REDIS_LIB, RTLD_NOW | RTLD_LOCAL);
  if (!lib) { fail("dlopen", REDIS_LIB); return -1; }
#define SYM(f, name) if (!(*(void **)&rl.f = dlsym(lib, name))) { fail("dlsym", name); return -1; }
  SYM(connect_tcp, "redisConnectNonBlock") SYM(connect_unix, "redisConnectUnixNonBlock")
  SYM(append_argv, "redisAppendCommandArgv") SYM(buf_write, "redisBufferWrite")
  SYM(buf_read, "redisBufferRead") SYM(get_reply, "redisGetReplyFromReader")
  SYM(free_reply, "freeReplyObject") SYM(free_ctx, "redisFree")
#undef SYM
  return 0;
}

static int waitfd(int fd, short ev, long long deadline)
{
  for (;;) {
    struct pollfd p = {fd, ev, 0};
    long long left = deadline - store_now_ms();
    int r;
    if (left <= 0) return 0;
    r = poll(&p, 1, (int)left);
    if (r > 0) return 1;
    if (r == -1 && errno != EINTR) return 0;
  }
}

static int roundtrip(redisContext *c, int n, int argc[], const char **argv[], size_t *lens[],
                     redisReply *out[], long long deadline);

/* node_connect - a connection to addr ("host:port" or "/path"), AUTH sent if configured */
static redisContext *node_connect(const char *addr, long long deadline)
{
  redisContext *c;
  int i, err = 0;
  socklen_t el = sizeof err;
  for (i = 0; i < NODES_MAX && nodes[i].c; ++i)
    if (!strcmp(nodes[i].addr, addr)) return nodes[i].c;
  if (i == NODES_MAX || strlen(addr) >= sizeof nodes[i].addr) return 0;
  if (*addr == '/') c = rl.connect_unix(addr);
  else {
    char h[128];
    const char *colon = strrchr(addr, ':');
    size_t hl = colon ? (size_t)(colon - addr) : strlen(addr);
    if (hl >= sizeof h) return 0;
    memcpy(h, addr, hl); h[hl] = 0;
    if (hl > 2 && h[0] == '[') { memmove(h, h + 1, hl - 2); h[hl - 2] = 0; }
    c = rl.connect_tcp(h, colon ? atoi(colon + 1) : 6379);
  }
  if (!c || c->err) { if (c) rl.free_ctx(c); return 0; }
  fcntl(c->fd, F_SETFD, FD_CLOEXEC);  /* qmail-queue and checkpassword get no Redis socket */
  if (!waitfd(c->fd, POLLOUT, deadline) || getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) ||
      err) {
    rl.free_ctx(c);
    return 0;
  }
  if (password.len) {
    const char *av[2] = {"AUTH", password.s};
    size_t al[2] = {4, password.len - 1};
    int ac = 2;
    const char **avp = av;
    size_t *alp = al;
    redisReply *r = 0;
    if (roundtrip(c, 1, &ac, &avp, &alp, &r, deadline)) { rl.free_ctx(c); return 0; }
    ac = r->type == REDIS_REPLY_ERROR;
    rl.free_reply(r);
    if (ac) { fail("auth", "password refused"); rl.free_ctx(c); return 0; }
  }
  memcpy(nodes[i].addr, addr, strlen(addr) + 1);
  nodes[i].c = c;
  return c;
}

/* roundtrip - send n commands, read n replies */
static int roundtrip(redisContext *c, int n, int argc[], const char **argv[], size_t *lens[],
                     redisReply *out[], long long deadline)
{
  int i, done = 0, got = 0;
  for (i = 0; i < n; ++i)
    if (rl.append_argv(c, argc[i], argv[i], lens[i]) != REDIS_OK) return -1;
  while (!done) {
    if (rl.buf_write(c, &done) != REDIS_OK) return -1;
    if (!done && !waitfd(c->fd, POLLOUT, deadline)) return -1;
  }
  while (got < n) {
    void *r = 0;
    if (rl.get_reply(c, &r) != REDIS_OK) return -1;
    if (r) { out[got++] = r; continue; }
    if (!waitfd(c->fd, POLLIN, deadline) || rl.buf_read(c) != REDIS_OK) return -1;
  }
  return 0;
}

static int redis_open(void)
{
  size_t i = 0;
  int first = 1;
  if (redis_load() == -1) return -1;
  if (!stralloc_copys(&prefix, "mxg:") || !stralloc_copys(&password, "")) return -1;
  while (i < redis_conf.len) {  /* entries, NUL-terminated: server, then "name value" lines */
    const char *l = redis_conf.s + i;
    i += strlen(l) + 1;
    if (first) { first = 0; continue; }
    if (!strncmp(l, "password ", 9)) { if (!stralloc_copys(&password, l + 9)) return -1; }
    else if (!strncmp(l, "timeout ", 8)) timeout_ms = atol(l + 8) > 0 ? atol(l + 8) : timeout_ms;
    else if (!strncmp(l, "prefix ", 7)) { if (!stralloc_copys(&prefix, l + 7)) return -1; }
    else if (log_on(LOG_ERROR)) {
      log_start("store"); log_str("error", "redis_setting"); log_clients("line", l); log_end();
    }
  }
  if (password.len && !stralloc_0(&password)) return -1;
  if (!node_connect(redis_conf.s, store_now_ms() + timeout_ms)) {
    fail("connect", redis_conf.s);
    return -1;
  }
  return 0;
}

/* rkey - "mxg:" + first part + ":{" + second part + "}" + rest: the second part is the tag */
static const char *rkey(stralloc *sa, const char *key)
{
  const char *c1 = strchr(key, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : 0;
  if (!stralloc_copy(sa, &prefix)) return 0;
  if (!c1) { if (!stralloc_cats(sa, key) || !stralloc_0(sa)) return 0; return sa->s; }
  if (!stralloc_catb(sa, key, (size_t)(c1 - key) + 1) || !stralloc_cats(sa, "{")) return 0;
  if (!stralloc_catb(sa, c1 + 1, c2 ? (size_t)(c2 - c1 - 1) : strlen(c1 + 1))) return 0;
  if (!stralloc_cats(sa, "}") || (c2 && !stralloc_cats(sa, c2)) || !stralloc_0(sa)) return 0;
  return sa->s;
}

static const char lua_bucket[] =
  "local t,n,lim,w,now=ARGV[1],tonumber(ARGV[2]),tonumber(ARGV[3]),tonumber(ARGV[4]),"
  "tonumber(ARGV[5]) if lim<1 then lim=1 end if w<1 then w=1 end "
  "local v=redis.call('HMGET',KEYS[1],'l','t') local l=tonumber(v[1]) or 0 "
  "local last=tonumber(v[2]) or now "
  "if now>last then l=l-(now-last)*lim/(w*1000) if l<0 then l=0 end last=now end "
  "local ok=1 if t=='take' then if l+n<=lim+1e-9 then l=l+n else ok=0 end "
  "elseif t=='peek' then if l+1>lim+1e-9 then ok=0 end return {ok,math.ceil(l-1e-9)} "
  "else l=l+n end "
  "redis.call('HSET',KEYS[1],'l',tostring(l),'t',tostring(last)) "
  "redis.call('EXPIRE',KEYS[1],math.floor(l*w/lim)+2) return {ok,math.ceil(l-1e-9)}";
static const char lua_enter[] =
  "local now=tonumber(ARGV[4]) redis.call('ZREMRANGEBYSCORE',KEYS[1],'-inf',now) "
  "local c=redis.call('ZCARD',KEYS[1]) "
  "if redis.call('ZSCORE',KEYS[1],ARGV[1]) then return {1,c} end "
  "if c<tonumber(ARGV[2]) then redis.call('ZADD',KEYS[1],now+tonumber(ARGV[3])*1000,ARGV[1]) "
  "redis.call('PEXPIRE',KEYS[1],tonumber(ARGV[3])*1000) return {1,c+1} end return {0,c}";
static const char lua_grey[] =
  "local s,d,rt,ex,aa=tonumber(ARGV[1]),tonumber(ARGV[2]),tonumber(ARGV[3]),tonumber(ARGV[4]),"
  "tonumber(ARGV[5]) local dl=0 local c=redis.call('HMGET',KEYS[2],'n','t') "
  "local cn,ct=tonumber(c[1]) or 0,tonumber(c[2]) or 0 "
  "if aa>0 and cn>=aa then redis.call('EXPIRE',KEYS[2],ex) return {0,cn} end "
  "local g=redis.call('HMGET',KEYS[1],'f','p') local f,p=tonumber(g[1]),tonumber(g[2]) or 0 "
  "if not f then redis.call('HSET',KEYS[1],'f',s,'p',0) redis.call('EXPIRE',KEYS[1],rt) "
  "if d<1 then d=1 end return {d,cn} end "
  "if p~=1 then if f>s then f=s redis.call('HSET',KEYS[1],'f',s) end "
  "if s<f+d then return {f+d-s,cn} end redis.call('HSET',KEYS[1],'p',1) dl=s-f end "
  "redis.call('EXPIRE',KEYS[1],ex) "
  "if s>=ct+3600 or s<ct then cn=cn+1 redis.call('HSET',KEYS[2],'n',cn,'t',s) end "
  "redis.call('EXPIRE',KEYS[2],ex) return {0,cn,dl}";

#define RCMD_MAX 16
#define RARG_MAX 12
struct rcmd { int argc; const char *argv[RARG_MAX]; size_t lens[RARG_MAX]; char num[RARG_MAX][24];
              stralloc keys[2]; };

static void rarg(struct rcmd *c, const char *s) { c->argv[c->argc] = s; c->lens[c->argc++] = strlen(s); }
static void rnum(struct rcmd *c, long long v)
{
  snprintf(c->num[c->argc], sizeof c->num[0], "%lld", v);
  rarg(c, c->num[c->argc]);
}

/* redis_exec - run the commands on the node their first key lives on, following MOVED/ASK */
static int redis_exec(struct rcmd *cmds, int n, redisReply *out[])
{
  long long deadline = store_now_ms() + timeout_ms;
  int argc[RCMD_MAX], i, hops;
  const char **argv[RCMD_MAX];
  size_t *lens[RCMD_MAX];
  redisContext *c = nodes[0].c;
  for (i = 0; i < n; ++i) { argc[i] = cmds[i].argc; argv[i] = cmds[i].argv; lens[i] = cmds[i].lens; }
  if (roundtrip(c, n, argc, argv, lens, out, deadline)) return -1;
  for (i = 0; i < n; ++i)  /* Redis Cluster: a redirected command is re-sent on its own */
    for (hops = 0; hops < 3 && out[i]->type == REDIS_REPLY_ERROR; ++hops) {
      const char *e = out[i]->str, *sp;
      int ask = !strncmp(e, "ASK ", 4);
      redisContext *to;
      char addr[128];
      if (strncmp(e, "MOVED ", 6) && !ask) break;
      if (!(sp = strchr(e + (ask ? 4 : 6), ' ')) || strlen(sp + 1) >= sizeof addr) break;
      memcpy(addr, sp + 1, strlen(sp + 1) + 1);
      if (!(to = node_connect(addr, deadline))) return -1;
      rl.free_reply(out[i]);
      out[i] = 0;
      {
        if (ask) {
          static const char *askv[1] = {"ASKING"};
          static size_t askl[1] = {6};
          int ac[2] = {1, argc[i]};
          const char **av[2] = {askv, argv[i]};
          size_t *al[2] = {askl, lens[i]};
          redisReply *r2[2] = {0, 0};
          if (roundtrip(to, 2, ac, av, al, r2, deadline)) return -1;
          rl.free_reply(r2[0]);
          out[i] = r2[1];
        } else if (roundtrip(to, 1, argc + i, argv + i, lens + i, out + i, deadline))
          return -1;
      }
    }
  for (i = 0; i < n; ++i)
    if (out[i]->type == REDIS_REPLY_ERROR) { fail("redis", out[i]->str); return -1; }
  return 0;
}

static int redis_ops(struct store_op *ops, int n, long long now)
{
  static struct rcmd cmds[RCMD_MAX];
  redisReply *out[RCMD_MAX];
  char mem[STORE_KEY_MAX + 100];
  int i, rc;
  if (n > RCMD_MAX) n = RCMD_MAX;
  for (i = 0; i < n; ++i) {
    struct rcmd *c = cmds + i;
    struct store_op *op = ops + i;
    const char *k = rkey(&c->keys[0], op->key);
    if (!k) return -1;
    c->argc = 0;
    if (op->type == STORE_LEAVE) {
      member(mem, sizeof mem, "");
      rarg(c, "ZREM"); rarg(c, k);
      if (!stralloc_copys(&c->keys[1], mem + 1) || !stralloc_0(&c->keys[1])) return -1;
      rarg(c, c->keys[1].s);
    } else if (op->type == STORE_ENTER) {
      member(mem, sizeof mem, "");
      if (!stralloc_copys(&c->keys[1], mem + 1) || !stralloc_0(&c->keys[1])) return -1;
      rarg(c, "EVAL"); rarg(c, lua_enter); rarg(c, "1"); rarg(c, k); rarg(c, c->keys[1].s);
      rnum(c, op->limit); rnum(c, op->window_s > 0 ? op->window_s : 3600); rnum(c, now);
    } else {
      rarg(c, "EVAL"); rarg(c, lua_bucket); rarg(c, "1"); rarg(c, k);
      rarg(c, op->type == STORE_TAKE ? "take" : op->type == STORE_PEEK ? "peek" : "add");
      rnum(c, op->n); rnum(c, op->limit); rnum(c, op->window_s); rnum(c, now);
    }
  }
  if (redis_exec(cmds, n, out)) return -1;
  rc = 0;
  for (i = 0; i < n; ++i) {
    redisReply *r = out[i];
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
      ops[i].ok = (int)r->element[0]->integer;
      ops[i].level = (long)r->element[1]->integer;
    } else ops[i].ok = 1;
    rl.free_reply(r);
  }
  return rc;
}

/* redis_reap - after a refused ENTER: members of this host whose process is gone are removed */
static int redis_reap(struct store_op *op)
{
  static struct rcmd c, z;
  redisReply *out[1];
  size_t i, hl = strlen(host);
  const char *k = rkey(&c.keys[0], op->key);
  int removed = 0;
  if (!k) return 0;
  c.argc = 0;
  rarg(&c, "ZRANGE"); rarg(&c, k); rarg(&c, "0"); rarg(&c, "-1");
  if (redis_exec(&c, 1, out)) return 0;
  if (out[0]->type == REDIS_REPLY_ARRAY)
    for (i = 0; i < out[0]->elements; ++i) {
      const char *m = out[0]->element[i]->str;
      redisReply *o2[1];
      if (!m || strncmp(m, host, hl) || m[hl] != ':' || pid_alive(atol(m + hl + 1))) continue;
      z.argc = 0;
      rarg(&z, "ZREM"); rarg(&z, k); rarg(&z, m);
      if (redis_exec(&z, 1, o2)) break;
      rl.free_reply(o2[0]);
      ++removed;
    }
  rl.free_reply(out[0]);
  return removed;
}

static long redis_grey(const char *t, const char *cl, const struct store_grey *g, long *delayed)
{
  static struct rcmd c;
  redisReply *out[1];
  long left = 0;
  const char *kt = rkey(&c.keys[0], t), *kc = rkey(&c.keys[1], cl);
  if (!kt || !kc) return -1;
  c.argc = 0;
  rarg(&c, "EVAL"); rarg(&c, lua_grey); rarg(&c, "2"); rarg(&c, kt); rarg(&c, kc);
  rnum(&c, store_now_ms() / 1000); rnum(&c, g->delay_s); rnum(&c, g->retry_s);
  rnum(&c, g->expire_s);
  if (c.argc < RARG_MAX) rnum(&c, g->autoallow);
  if (redis_exec(&c, 1, out)) return -1;
  *delayed = 0;
  if (out[0]->type == REDIS_REPLY_ARRAY && out[0]->elements >= 2)
    left = (long)out[0]->element[0]->integer;
  if (out[0]->type == REDIS_REPLY_ARRAY && out[0]->elements == 3)
    *delayed = (long)out[0]->element[2]->integer;
  rl.free_reply(out[0]);
  return left;
}

/* ---------------------------------------------------------------- the interface */

static int ready(void)
{
  int r;
  if (broken) return -1;
  if (backend) return 0;
  if (gethostname(host, sizeof host - 1)) memcpy(host, "localhost", 10);
  host[strcspn(host, ":|")] = 0;
  r = control_readfile(&redis_conf, "control/redis");
  if (r == -1) { backend = "redis"; fail("control", "control/redis"); return -1; }
  if (r == 1 && redis_conf.len) { backend = "redis"; return redis_open(); }
  backend = "lmdb";
  return guard(open_cb, 0);
}

int store_run(struct store_op *ops, int n)
{
  long long now;
  int i;
  if (ready()) return -1;
  now = store_now_ms();
  if (*backend == 'l') {
    struct runctx c = {ops, n, now};
    return lmdb_txn(run_cb, &c, 1);
  }
  if (redis_ops(ops, n, now)) { fail("redis", "command"); return -1; }
  for (i = 0; i < n; ++i)  /* a limit reached with a dead process of ours among the members */
    if (ops[i].type == STORE_ENTER && !ops[i].ok && redis_reap(ops + i) > 0 &&
        redis_ops(ops + i, 1, now)) { fail("redis", "command"); return -1; }
  return 0;
}

long store_greylist(const char *triplet, const char *client, const struct store_grey *g,
                    long *delayed)
{
  long left;
  *delayed = 0;
  if (ready()) return -1;
  if (*backend == 'l') {
    struct greyctx c = {triplet, client, g, 0, 0};
    if (lmdb_txn(grey_cb, &c, 1)) return -1;
    *delayed = c.delayed;
    return c.left;
  }
  if ((left = redis_grey(triplet, client, g, delayed)) < 0) fail("redis", "greylist");
  return left;
}

static int walk_cb(MDB_txn *txn, void *x)
{
  struct { const char *match; int (*fn)(const char *, size_t, const struct store_rec *, void *);
           void *ctx; long n; } *w = x;
  MDB_cursor *cur;
  MDB_val k, v;
  int rc;
  size_t ml = w->match ? strlen(w->match) : 0;
  if ((rc = mdb_cursor_open(txn, dbi, &cur))) return rc;
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); !rc; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    struct rec r;
    size_t i;
    int hit = !ml;
    for (i = 0; !hit && i + ml <= k.mv_size; ++i) hit = !memcmp((char *)k.mv_data + i, w->match, ml);
    if (!hit) continue;
    memset(&r, 0, sizeof r);
    if (v.mv_size == sizeof r) memcpy(&r, v.mv_data, sizeof r);
    ++w->n;
    if (w->fn(k.mv_data, k.mv_size, &r, w->ctx) && (rc = mdb_cursor_del(cur, 0))) break;
  }
  mdb_cursor_close(cur);
  return rc == MDB_NOTFOUND ? 0 : rc;
}

/* rcall - one command (arguments up to a 0) on the server of control/redis; the reply or 0 */
static redisReply *rcall(const char *a, ...)
{
  static struct rcmd c;
  redisReply *out[1];
  va_list ap;
  const char *x;
  c.argc = 0;
  va_start(ap, a);
  for (x = a; x && c.argc < RARG_MAX; x = va_arg(ap, const char *)) rarg(&c, x);
  va_end(ap);
  return redis_exec(&c, 1, out) ? 0 : out[0];
}

/* unkey - "mxg:g:{net}:rest" back to the store key "g:net:rest" */
static void unkey(char *out, size_t size, const char *rk)
{
  size_t n = 0;
  int braces = 0;
  if (!strncmp(rk, prefix.s, prefix.len)) rk += prefix.len;
  for (; *rk && n + 1 < size; ++rk) {
    if ((*rk == '{' || *rk == '}') && braces < 2) { ++braces; continue; }
    out[n++] = *rk;
  }
  out[n] = 0;
}

static double num(const redisReply *r)
{
  return r && r->type == REDIS_REPLY_STRING && r->str ? atof(r->str) : 0;
}

/* redis_key - one key of the walk: fn for its record (hash) or each member (zset) */
static long redis_key(const char *rk, const char *match,
                      int (*fn)(const char *, size_t, const struct store_rec *, void *), void *ctx)
{
  char key[STORE_KEY_MAX + 200];
  redisReply *t, *v;
  long n = 0, now = (long)(store_now_ms() / 1000);
  size_t i;
  unkey(key, sizeof key, rk);
  if (match && !strstr(key, match)) return 0;
  if (!(t = rcall("TYPE", rk, (char *)0))) return -1;
  if (t->type == REDIS_REPLY_STATUS && !strcmp(t->str, "zset")) {
    if (!(v = rcall("ZRANGE", rk, "0", "-1", "WITHSCORES", (char *)0))) return -1;
    for (i = 0; v->type == REDIS_REPLY_ARRAY && i + 1 < v->elements; i += 2) {
      char mk[sizeof key + 100];
      struct store_rec r = {0, 0, (long long)(num(v->element[i + 1]) / 1000)};
      snprintf(mk, sizeof mk, "%s|%s", key, v->element[i]->str);
      ++n;
      if (fn(mk, strlen(mk), &r, ctx)) rl.free_reply(rcall("ZREM", rk, v->element[i]->str, (char *)0));
    }
  } else if (t->type == REDIS_REPLY_STATUS && !strcmp(t->str, "hash")) {
    redisReply *ttl = rcall("TTL", rk, (char *)0);
    struct store_rec r = {0, 0, 0};
    if (!ttl || !(v = rcall("HMGET", rk, "l", "t", "f", "p", "n", (char *)0))) return -1;
    if (v->type == REDIS_REPLY_ARRAY && v->elements == 5) {
      int k = v->element[0]->type == REDIS_REPLY_STRING ? 0 : v->element[2]->type == REDIS_REPLY_STRING ? 2 : 4;
      r.a = num(v->element[k]);
      r.b = (long long)num(v->element[k == 2 ? 3 : 1]);
    }
    r.expire_s = ttl->integer >= 0 ? now + ttl->integer : now + 86400L * 365;
    rl.free_reply(ttl);
    n = 1;
    if (fn(key, strlen(key), &r, ctx)) rl.free_reply(rcall("DEL", rk, (char *)0));
  } else v = 0;
  rl.free_reply(t);
  if (v) rl.free_reply(v);
  return n;
}

/* redis_walk - SCAN the server of control/redis for our keys (with a Redis Cluster: the keys
 * on that node only) */
static long redis_walk(const char *match,
                       int (*fn)(const char *, size_t, const struct store_rec *, void *), void *ctx)
{
  char cursor[32] = "0", pat[200];
  long total = 0;
  snprintf(pat, sizeof pat, "%.*s*", (int)(prefix.len < 190 ? prefix.len : 190), prefix.s);
  do {
    redisReply *r = rcall("SCAN", cursor, "MATCH", pat, "COUNT", "500", (char *)0);
    size_t i;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) return -1;
    snprintf(cursor, sizeof cursor, "%s", r->element[0]->str ? r->element[0]->str : "0");
    for (i = 0; i < r->element[1]->elements; ++i) {
      long n = redis_key(r->element[1]->element[i]->str, match, fn, ctx);
      if (n < 0) { rl.free_reply(r); return -1; }
      total += n;
    }
    rl.free_reply(r);
  } while (strcmp(cursor, "0"));
  return total;
}

long store_walk(const char *match, int (*fn)(const char *, size_t, const struct store_rec *, void *),
                void *ctx)
{
  struct { const char *match; int (*fn)(const char *, size_t, const struct store_rec *, void *);
           void *ctx; long n; } w = {match, fn, ctx, 0};
  if (ready()) return -1;
  if (*backend == 'r') return redis_walk(match, fn, ctx);
  if (lmdb_txn(walk_cb, &w, 0)) return -1;
  mdb_env_sync(env, 1);
  return w.n;
}

static int purge_cb(MDB_txn *txn, void *x)
{
  long n = purge(txn, 0);
  if (n < 0) return EIO;
  *(long *)x = n;
  return 0;
}

long store_purge(void)
{
  long n = 0;
  int dead = 0;
  if (ready() || *backend != 'l') return -1;
  mdb_reader_check(env, &dead);
  if (lmdb_txn(purge_cb, &n, 0)) return -1;
  mdb_env_sync(env, 1);
  return n;
}

static int nop_cb(MDB_txn *txn, void *x) { (void)txn; (void)x; return 0; }

void store_forget(void)
{
  env = 0;
  rtxn = 0;
  npend = 0;
  dbi_open = 0;
  backend = 0;
  broken = 0;
}

void store_close(void)
{
  if (env && damaged) { env = 0; return; }  /* see guard() */
  if (env) {
    if (npend && !broken) lmdb_txn(nop_cb, 0, 0);  /* the session's increments, in one write */
    if (rtxn) mdb_txn_abort(rtxn);
    rtxn = 0;
    npend = 0;
    dbi_open = 0;
    mdb_env_close(env);
    env = 0;
    backend = 0;
  }
}
