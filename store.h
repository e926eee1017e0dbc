/* store.h - state shared by every smtpd process: leaky buckets (rates), concurrency counts
 * and the greylist. LMDB in a state directory by default; Redis (hiredis, dlopen()ed) when
 * control/redis names a server. Nothing is opened until the first operation. */
#ifndef STORE_H
#define STORE_H
#include <stddef.h>

#define STORE_KEY_MAX 240   /* bytes of a key; longer keys are cut and get a hash suffix */

enum store_optype {
  STORE_TAKE = 1,   /* leaky bucket: add n if level+n <= limit; ok = added */
  STORE_PEEK,       /* ok = one more would fit */
  STORE_ADD,        /* add n whatever the level; ok = 1 */
  STORE_ENTER,      /* concurrency: join key if fewer than limit live members; ok = joined */
  STORE_LEAVE,      /* leave key */
};

struct store_op {
  enum store_optype type;
  const char *key;     /* built with store_key() */
  long n;              /* bucket: units to add */
  long limit;          /* bucket: burst (units per window); concurrency: members */
  long window_s;       /* bucket: seconds to drain limit units; concurrency: member lifetime */
  int atonce;          /* LMDB: write the increment now (else with the session's next write) */
  /* results */
  int ok;
  long level;          /* bucket level after the op (units, rounded up); members counted */
};

/* store_key - key into out[STORE_KEY_MAX+1] from parts joined by ':' with A-Z lowered, every byte outside
 * [a-z0-9.@+_-] written %XX; cut with a hash suffix when too long. Returns out. */
char *store_key(char *out, const char *const *parts, int n);

/* store_run - the ops in one transaction (LMDB) or one round trip (Redis). 0 done;
 * -1 store unusable (logged once per session): the caller fails open. */
int store_run(struct store_op *ops, int n);

/* store_greylist - the triplet key and the client key (auto-allow) of one greylist decision.
 * Returns 0 pass, >0 seconds left to wait, -1 store unusable. *delayed: when the triplet
 * passes for the first time, the seconds since it was first seen, else 0. */
struct store_grey {
  long delay_s, retry_s, expire_s, autoallow;
};
long store_greylist(const char *triplet, const char *client, const struct store_grey *g,
                    long *delayed);

/* store_backend - "lmdb", "redis", or 0 before the first operation */
const char *store_backend(void);
void store_close(void);   /* at exit: the session's last writes, then leave the environment */
/* store_forget - in a child after fork(): drop what the parent opened, without touching it
 * (LMDB environments must not be used across fork; closing would free the parent's slot) */
void store_forget(void);

/* for mxguard-store (LMDB): a record is a bucket {level, last_ms}, a concurrency member
 * "key|host:pid" {-, -}, a greylist triplet {first_s, passed}, a greylist client {passes,
 * last counted_s}; every record has its expiry */
struct store_rec {
  double a;
  long long b;
  long long expire_s;
};
/* store_walk - fn for each record whose key contains match (all: 0); fn returns 1 to delete
 * it. Records seen, or -1. store_purge - remove expired records; how many, or -1. */
long store_walk(const char *match, int (*fn)(const char *key, size_t klen,
                const struct store_rec *r, void *ctx), void *ctx);
long store_purge(void);
/* for mxguard-store: the LMDB directory (control/storedir, default "state") */
const char *store_dir(void);
long long store_now_ms(void);   /* wall clock (shared across hosts) */
extern long long (*store_clock)(void);  /* tests: a clock of their own */
#endif
