/* t_store - store.c's LMDB backend in a scratch directory: keys (escaping, the hash suffix of
 * cut keys), the leaky bucket (limit, leaking, a clock that goes back), concurrency counts
 * (a member killed with SIGKILL is not counted), postgrey's greylist decision (delay, pass,
 * retry window, auto-allow, the clock going back), 200 processes adding to one counter
 * (no update lost), purge, and a corrupt or missing store (-1: the caller fails open). */
#include <signal.h>
#include <sys/wait.h>
#include "store.h"
#include "check.h"

#define CHK(name, ok, ...) check(ok, name, __VA_ARGS__)

static long long now_ms = 1700000000000LL;
static long long fake(void) { return now_ms; }

static struct store_op op(enum store_optype t, const char *key, long n, long limit, long win)
{
  struct store_op o;
  memset(&o, 0, sizeof o);
  o.type = t; o.key = key; o.n = n; o.limit = limit; o.window_s = win;
  return o;
}

static int run1(struct store_op *o) { return store_run(o, 1); }

static void keys(void)
{
  char k[STORE_KEY_MAX + 1], big[600];
  const char *p[] = {"g", "192.0.2.0/24", "A b:c@x.test", "\n"};
  const char *p2[2] = {"r", big};
  char k2[STORE_KEY_MAX + 1];
  check_str("key escaped", store_key(k, p, 4), "g:192.0.2.0%2F24:a%20b%3Ac@x.test:%0A");
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = 0;
  store_key(k, p2, 2);
  big[500] = 'b';
  store_key(k2, p2, 2);
  check_long("key cut to STORE_KEY_MAX", (long)strlen(k), STORE_KEY_MAX);
  CHK("cut keys differ by their hash", strcmp(k, k2) != 0, "%s", k);
}

/* seen - the level of key as another process sees it */
static long seen(const char *key)
{
  int p[2], status;
  long level = -1;
  pid_t pid;
  if (pipe(p)) return -1;
  if (!(pid = fork())) {
    struct store_op o = op(STORE_PEEK, key, 0, 1000, 3600);
    store_forget();
    if (run1(&o) == 0 && write(p[1], &o.level, sizeof o.level) != sizeof o.level) _exit(1);
    _exit(0);
  }
  close(p[1]);
  if (read(p[0], &level, sizeof level) != sizeof level) level = -1;
  close(p[0]);
  waitpid(pid, &status, 0);
  return level;
}

/* deferred - one increment of a counter stays unwritten, a second is written with it */
static void deferred(void)
{
  struct store_op o = op(STORE_TAKE, "r:defer", 1, 1000, 3600);
  store_close();
  run1(&o);
  check_long("deferred: the first increment is not written yet", seen("r:defer"), 0);
  o = op(STORE_TAKE, "r:defer", 1, 1000, 3600);
  run1(&o);
  check_long("deferred: its own checks count it", o.level, 2);
  check_long("deferred: the second is written with the first", seen("r:defer"), 2);
  o = op(STORE_TAKE, "r:defer", 1, 1000, 3600);
  run1(&o);
  store_close();
  check_long("deferred: the rest at the end of the session", seen("r:defer"), 3);
}

static void buckets(void)
{
  struct store_op o;
  int i, ok = 1;
  for (i = 0; i < 3; ++i) {
    o = op(STORE_TAKE, "r:x", 1, 3, 60);
    ok &= run1(&o) == 0 && o.ok;
  }
  CHK("bucket: 3 of 3 taken", ok, "%s", "");
  o = op(STORE_TAKE, "r:x", 1, 3, 60);
  CHK("bucket: the 4th refused", run1(&o) == 0 && !o.ok && o.level == 3, "ok %d level %ld", o.ok, o.level);
  now_ms += 20000;  /* 3 per 60 s: one leaks in 20 s */
  o = op(STORE_TAKE, "r:x", 1, 3, 60);
  CHK("bucket: one leaked after 20 s", run1(&o) == 0 && o.ok, "ok %d level %ld", o.ok, o.level);
  o = op(STORE_TAKE, "r:x", 1, 3, 60);
  CHK("bucket: then full again", run1(&o) == 0 && !o.ok, "ok %d", o.ok);
  now_ms -= 100000;  /* the clock goes back: nothing leaks, nothing breaks */
  o = op(STORE_PEEK, "r:x", 0, 3, 60);
  CHK("bucket: clock back leaks nothing", run1(&o) == 0 && !o.ok && o.level == 3,
        "ok %d level %ld", o.ok, o.level);
  now_ms += 100000 + 60000;
  o = op(STORE_PEEK, "r:x", 0, 3, 60);
  CHK("bucket: drained after the window", run1(&o) == 0 && o.ok && o.level == 0,
        "ok %d level %ld", o.ok, o.level);
}

/* member - a child that joins key and stays until killed; its pid (0 when refused) */
static pid_t member(const char *key, long limit)
{
  int p[2];
  char c = 0;
  pid_t pid;
  if (pipe(p)) return 0;
  if (!(pid = fork())) {
    struct store_op o = op(STORE_ENTER, key, 0, limit, 3600);
    store_close();  /* never use an environment across fork: open our own */
    c = (char)(run1(&o) == 0 && o.ok ? 'y' : 'n');
    if (write(p[1], &c, 1) != 1) _exit(1);
    pause();
    _exit(0);
  }
  close(p[1]);
  if (read(p[0], &c, 1) != 1) c = 0;
  close(p[0]);
  if (c != 'y') { kill(pid, SIGKILL); waitpid(pid, 0, 0); return 0; }
  return pid;
}

static void concurrency(void)
{
  pid_t a, b, c;
  store_close();
  a = member("k:1.2.3.4", 2);
  b = member("k:1.2.3.4", 2);
  c = member("k:1.2.3.4", 2);
  CHK("concurrency: 2 joined", a && b, "%d %d", (int)a, (int)b);
  CHK("concurrency: the 3rd refused", !c, "%d", (int)c);
  kill(a, SIGKILL);
  waitpid(a, 0, 0);
  c = member("k:1.2.3.4", 2);
  CHK("concurrency: a member killed with SIGKILL is not counted", c != 0, "%s", "");
  if (c) { kill(c, SIGKILL); waitpid(c, 0, 0); }
  kill(b, SIGKILL);
  waitpid(b, 0, 0);
  {
    struct store_op o = op(STORE_ENTER, "k:1.2.3.4", 0, 1, 3600);
    CHK("concurrency: all gone, one joins", run1(&o) == 0 && o.ok && o.level == 1,
          "ok %d level %ld", o.ok, o.level);
    o.type = STORE_LEAVE;
    run1(&o);
    o = op(STORE_ENTER, "k:1.2.3.4", 0, 1, 3600);
    CHK("concurrency: left, then joined again", run1(&o) == 0 && o.ok && o.level == 1,
          "ok %d level %ld", o.ok, o.level);
    o.type = STORE_LEAVE;
    run1(&o);
  }
}

static long dl;

static void greylist(void)
{
  struct store_grey g = {300, 172800, 3024000, 5};
  long l;
  int i;
  now_ms = 1800000000000LL;
  check_long("grey: first sight waits 300 s", store_greylist("g:n:a:b", "w:n:1", &g, &dl), 300);
  now_ms += 100000;
  check_long("grey: 200 s left after 100 s", store_greylist("g:n:a:b", "w:n:1", &g, &dl), 200);
  now_ms -= 1000000;  /* clock back 1000 s: not unlocked, and not locked for 1000 s more */
  l = store_greylist("g:n:a:b", "w:n:1", &g, &dl);
  CHK("grey: clock back waits the delay again, no more", l > 0 && l <= 300, "%ld", l);
  now_ms += 1000000 + 300000;
  check_long("grey: passes after the delay", store_greylist("g:n:a:b", "w:n:1", &g, &dl), 0);
  check_long("grey: first pass says how long since first seen (clock moved back 1000 s)", dl, 1300);
  now_ms += 10 * 86400000LL;
  check_long("grey: a passed triplet passes for days", store_greylist("g:n:a:b", "w:n:1", &g, &dl), 0);
  check_long("grey: later passes: no delay", dl, 0);
  now_ms += 36 * 86400000LL;
  check_long("grey: expired after 35 days", store_greylist("g:n:a:b", "w:n:1", &g, &dl), 300);
  now_ms += 3 * 86400000LL;
  check_long("grey: retry window over: waits again", store_greylist("g:n:a:b", "w:n:1", &g, &dl), 300);
  /* auto-allow: 5 passes, counted at most once an hour, then new triplets pass at once */
  for (i = 0; i < 5; ++i) {
    char t[32];
    snprintf(t, sizeof t, "g:n:s%d:b", i);
    store_greylist(t, "w:n:2", &g, &dl);
    now_ms += 301000;
    l = store_greylist(t, "w:n:2", &g, &dl);
    now_ms += 3600000;
  }
  check_long("grey: auto-allowed after 5 passes", store_greylist("g:n:new:b", "w:n:2", &g, &dl), 0);
  check_long("grey: another client is not", store_greylist("g:n:new:b", "w:n:3", &g, &dl), 300);
}

static void parallel(void)
{
  int i, status, bad = 0;
  struct store_op o;
  store_close();
  for (i = 0; i < 200; ++i)
    if (!fork()) {
      int j;
      store_clock = 0;
      for (j = 0; j < 10; ++j) {
        o = op(STORE_ADD, "r:par", 1, 1000000, 1000000000L);
        if (run1(&o)) _exit(1);
      }
      store_close();
      _exit(0);
    }
  for (i = 0; i < 200; ++i) if (wait(&status) == -1 || status) ++bad;
  check_long("200 processes: all ran", bad, 0);
  store_clock = 0;
  o = op(STORE_ADD, "r:par", 0, 1000000, 1000000000L);
  CHK("200 processes x 10 adds: no update lost", run1(&o) == 0 && o.level == 2000,
        "level %ld", o.level);
  store_clock = fake;
}

static int count(const char *k, size_t l, const struct store_rec *r, void *ctx)
{
  (void)k; (void)l; (void)r;
  ++*(long *)ctx;
  return 0;
}

static void purge(void)
{
  long before = 0, after = 0, n;
  store_walk(0, count, &before);
  now_ms += 400 * 86400000LL;
  n = store_purge();
  store_walk(0, count, &after);
  CHK("purge: expired records removed", n > 0 && after == before - n && after == 0,
        "before %ld purged %ld after %ld", before, n, after);
}

/* killed_writer - a process killed (SIGKILL) while it holds LMDB's write lock, in the middle
 * of an update: the next writer gets the lock (robust mutex) and nothing stays counted */
static int hold(const char *k, size_t l, const struct store_rec *r, void *ctx)
{
  char c = 'h';
  (void)k; (void)l; (void)r;
  if (write(*(int *)ctx, &c, 1) != 1) _exit(1);
  pause();
  return 0;
}

static void killed_writer(void)
{
  int p[2], status;
  char c = 0;
  pid_t pid, member_pid;
  struct store_op o = op(STORE_ENTER, "k:killed", 0, 1, 3600);
  store_close();
  member_pid = fork();
  if (!member_pid) {  /* a session counted for CONNMAX, killed later */
    struct store_op m = op(STORE_ENTER, "k:killed", 0, 1, 3600);
    store_close();
    run1(&m);
    pause();
    _exit(0);
  }
  usleep(200000);
  if (pipe(p)) return;
  if (!(pid = fork())) {
    store_close();
    store_walk(0, hold, &p[1]);  /* a write transaction that never ends */
    _exit(1);
  }
  if (read(p[0], &c, 1) != 1) c = 0;
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  kill(member_pid, SIGKILL);
  waitpid(member_pid, &status, 0);
  CHK("killed writer: it held the write lock", c == 'h', "%d", c);
  CHK("killed writer and member: the next update goes through, nothing stuck",
      run1(&o) == 0 && o.ok && o.level == 1, "ok %d level %ld", o.ok, o.level);
  o.type = STORE_LEAVE;
  run1(&o);
  close(p[0]);
  close(p[1]);
}

/* full - a 1 MB map filled with records that do not expire: -1 (fail open), no crash; once
 * they have expired, the writer that finds the map full purges and goes on */
static void full(void)
{
  int status;
  pid_t pid;
  store_close();
  if (!(pid = fork())) {
    int i, failed = -1;
    check_writes("control/storedir", "small\n");
    check_writes("control/storemapsize", "1\n");
    mkdir("small", 0700);
    for (i = 0; i < 20000 && failed < 0; ++i) {
      char k[64];
      struct store_op o;
      snprintf(k, sizeof k, "r:%d.%d.%d.%d:rcptrate-with-a-longer-name", i & 255, i >> 8, 7, 9);
      o = op(STORE_ADD, k, 1, 10, 3600);
      o.atonce = 1;
      if (run1(&o)) failed = i;
    }
    _exit(failed > 100 ? 0 : 1);
  }
  waitpid(pid, &status, 0);
  CHK("full store: -1 (fail open) after many records, no crash", status == 0, "status %d", status);
  if (!(pid = fork())) {
    struct store_op o = op(STORE_ADD, "r:new", 1, 10, 3600);
    check_writes("control/storedir", "small\n");
    check_writes("control/storemapsize", "1\n");
    now_ms += 7200 * 1000;  /* every record has expired */
    o.atonce = 1;
    _exit(run1(&o) == 0 ? 0 : 1);
  }
  waitpid(pid, &status, 0);
  CHK("full store: purged when full, then written", status == 0, "status %d", status);
  unlink("control/storemapsize");
  check_writes("control/storedir", "state\n");
}

static void broken(void)
{
  int status;
  pid_t pid;
  store_close();
  if (!(pid = fork())) {  /* a fresh process: store.c keeps its state per process */
    struct store_op o = op(STORE_TAKE, "r:y", 1, 1, 60);
    check_writes("control/storedir", "corrupt\n");
    mkdir("corrupt", 0700);
    check_write("corrupt/data.mdb", "this is not an lmdb file at all, not at all......", 49, 0600);
    _exit(run1(&o) == -1 ? 0 : 1);
  }
  waitpid(pid, &status, 0);
  CHK("corrupt store: -1 (fail open)", status == 0, "status %d", status);
  if (!(pid = fork())) {
    struct store_op o = op(STORE_TAKE, "r:y", 1, 1, 60);
    check_writes("control/storedir", "missing\n");
    _exit(run1(&o) == -1 && store_greylist("g:a", "w:a", &(struct store_grey){300, 600, 900, 5}, &dl) == -1 ? 0 : 1);
  }
  waitpid(pid, &status, 0);
  CHK("missing store: -1 (fail open)", status == 0, "status %d", status);
}

int main(void)
{
  check_tmpdir("store");
  mkdir("control", 0700);
  mkdir("state", 0700);
  store_clock = fake;
  keys();
  buckets();
  deferred();
  concurrency();
  greylist();
  parallel();
  purge();
  killed_writer();
  full();
  broken();
  store_close();
  return check_done();
}
