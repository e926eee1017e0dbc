/* mxguard-store - look at and maintain the LMDB store of mxguard-smtpd (rates, concurrency,
 * greylist): show or clear the records of a client, sender or key, export everything, purge
 * expired records (from cron). Runs in the qmail home (QMAILHOME) as smtpd does and reads
 * the same control/storedir, or control/redis (then show, clear and export SCAN the server
 * named there, and purge has nothing to do: Redis expires keys itself).
 * Exit status: 0 done, 1 nothing matched (show, clear), 100 usage, 111 temporary error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "control.h"
#include "store.h"

static void usage(void)
{
  fputs("usage: mxguard-store show STRING | clear STRING | export | purge\n", stderr);
  exit(100);
}

static const char *kind(const char *key, size_t len)
{
  if (memchr(key, '|', len)) return "member";
  switch (len > 1 && key[1] == ':' ? key[0] : 0) {
    case 'g': return "greylist";
    case 'w': return "greyclient";
    case 'c': case 'm': case 'r': case 'u': case 'a': return "bucket";
    case 't': case 'k': return "member";
  }
  return "unknown";
}

static int print(const char *key, size_t len, const struct store_rec *r, void *ctx)
{
  const char *k = kind(key, len);
  long long now = store_now_ms() / 1000;
  (void)ctx;
  printf("%.*s %s ", (int)len, key, k);
  if (!strcmp(k, "bucket")) printf("level=%.3f last_ms=%lld", r->a, r->b);
  else if (!strcmp(k, "greylist")) printf("first=%.0f passed=%lld", r->a, r->b);
  else if (!strcmp(k, "greyclient")) printf("passes=%.0f counted=%lld", r->a, r->b);
  else printf("-");
  if (r->expire_s < 0 || r->expire_s > 100000000000LL) printf(" damaged\n");
  else printf(" expires_in=%lld%s\n", r->expire_s - now, r->expire_s <= now ? " expired" : "");
  return 0;
}

static int delete(const char *key, size_t len, const struct store_rec *r, void *ctx)
{
  print(key, len, r, ctx);
  return 1;
}

static long walk(const char *match, int del)
{
  long n = store_walk(match, del ? delete : print, 0);
  if (n < 0) {
    fprintf(stderr, "mxguard-store: the store in %s cannot be used (see the log line above)\n",
            store_dir());
    exit(111);
  }
  return n;
}

int main(int argc, char **argv)
{
  static stralloc r;
  long n;
  if (argc < 2) usage();
  if (control_chdir() == -1) { perror("mxguard-store: chdir to the qmail home"); return 111; }
  if (control_readfile(&r, "control/redis") == 1 && r.len && !strcmp(argv[1], "purge")) {
    printf("purged 0 (Redis expires keys itself)\n");
    return 0;
  }
  if (!strcmp(argv[1], "show") && argc == 3) return walk(argv[2], 0) ? 0 : 1;
  if (!strcmp(argv[1], "clear") && argc == 3) {
    n = walk(argv[2], 1);
    printf("cleared %ld\n", n);
    return n ? 0 : 1;
  }
  if (!strcmp(argv[1], "export") && argc == 2) { walk(0, 0); return 0; }
  if (!strcmp(argv[1], "purge") && argc == 2) {
    if ((n = store_purge()) < 0) {
      fprintf(stderr, "mxguard-store: the store in %s cannot be used\n", store_dir());
      return 111;
    }
    printf("purged %ld\n", n);
    return 0;
  }
  usage();
  return 100;
}
