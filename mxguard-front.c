/* mxguard-front.c - an optional persistent listener in place of tcpserver/tcpsvd. Every new
 * connection is held in one epoll loop (no thread, no fork) while the pre-greeting checks run:
 * tcprules (-x) and ipsvd instructions (-i) cdbs, the total (-c) and per-IP (-C) concurrency,
 * CONNRATE in the smtpd's LMDB bucket, the greeting delay with early-talker refusal as
 * tarpit.c does it (GREETDELAY, DROPRUSHGREET), and DNSBL/DNSWL lookups through one c-ares channel kept for the daemon's lifetime
 * (control/frontdnsbl or FRONTDNSBL only - never control/dnsbl, whose verdicts rules may
 * override per recipient). A listed client is answered "554 5.7.1" by the front itself and
 * closed; DNS trouble hands the client on. Survivors get a fresh process of "program args"
 * (posix_spawn: clone+exec, no copy of the front) with the socket as fd 0 and 1 and the
 * environment tcpserver -H -R would give; the greeting is left to the program. Children are
 * reaped through a SIGCHLD self-pipe. Memory is bounded: at most -m connections held, each a
 * slot of a few hundred bytes; every hold has a total deadline. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <ares.h>
#include <case.h>
#include <cdb.h>
#include <open.h>
#include <stralloc.h>
#include "control.h"
#include "dnsbl.h"
#include "handoff.h"
#include "instruct.h"
#include "log.h"
#include "store.h"
#include "tarpit.h"

#define ZONES_MAX 32
#define REFUSE_MS 10000       /* the refusal dialogue's total deadline (FRONTREFUSEWAIT) */
#define REFUSE_CMDS 5         /* commands answered before the refused client is closed */
#define DNSBUDGET_DEFAULT 2000
#define DELAY_MAX_MS 60000    /* tarpit.h TARPIT_DELAY_MAX */
#define VALUE_MAX 65536
#define PAUSE_MS 100          /* no accept() for this long after EMFILE and the like */
#define LINE_MAX_ 256

enum { PH_FREE, PH_CHECK, PH_REFUSE, PH_READY };
enum { EV_LISTEN = 1, EV_SIG, EV_ARES, EV_CONN, EV_SPARE };
#define SPARE_MAX 64          /* -s: pre-started programs waiting for a client */

struct conn {
  int fd, phase, upos;
  unsigned gen;
  long long start, delay_end, dns_end, deadline;
  char ip[INET6_ADDRSTRLEN], port[8], lip[INET6_ADDRSTRLEN], lport[8];
  unsigned char addr[16];
  int pending, wl, wlfail, score, listed;  /* listed: the zone, -1 */
  int delaying, talked, watching, ncmds, exec;
  size_t blen;
  char buf[LINE_MAX_];
  stralloc env;   /* the child's changes: "NAME=VALUE\0" sets, "NAME\0" unsets; last one wins */
  stralloc cmd;   /* an X instruction's command */
  int next;       /* the ready queue */
};

struct child { pid_t pid; unsigned char addr[16]; };

struct zone {
  struct dnsbl_zone z;
  int smtpd;  /* a DNSWL of the smtpd's control/dnsbl: only ever exempts */
};

/* options */
static int verbose = 0, quiet = 0, flagU = 0, lookups = 0;
static unsigned long maxchild = 40, maxhold = 0, backlog = 20, peripmax = 0;
static stralloc perip_msg;
static const char *rulescdb, *instructcdb, *localname;
static long uid = -1, gid = -1;
static char **prog;

/* state */
static int ep, lfd, sigpipe_[2];
static struct conn *conns;
static int *used, nused, *freelist, nfree;
static struct child *children;
static unsigned long nchild, nready;
static int readyhead = -1, readytail = -1;
static int listening, paused;
static long long pause_until;
static struct zone zones[ZONES_MAX];
static int nzones, nblock;  /* nblock: zones that list (positive weight) */
static ares_channel ch;
static int chok;
static long dnsbudget = DNSBUDGET_DEFAULT, refusewait = REFUSE_MS;
static int afam;
static volatile sig_atomic_t got_term, got_hup;
static struct {
  unsigned long accepted, handed, dnsbl, early, denied, perip, connrate, gone, errors, spawnfail,
    spared;
} cnt;
/* -s: spare processes of the program, started before a client comes (handoff.h) */
static struct spare { pid_t pid; int fd, ready; } spares[SPARE_MAX];
static unsigned long spare_want;
static int nspare, spares_off;
static char **spareenv;
static char **baseenv;

static long long now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(const char *what, const char *detail)
{
  log_start("error");
  log_str("what", what);
  if (detail) log_str("detail", detail);
  if (errno) log_str("errno", strerror(errno));
  log_end();
  _exit(111);
}

static void usage(void)
{
  static const char u[] = "usage: mxguard-front [-vq] [-c n] [-C n[:msg]] [-m n] [-s n] [-x rules.cdb] "
    "[-i instruct.cdb] [-u uid] [-g gid] [-U] [-l localname] [-b backlog] [-R] [-H] [-h] "
    "host port program [arg ...]\n";
  if (write(2, u, sizeof u - 1)) {}
  _exit(100);
}

static int num(const char *s, unsigned long *v)
{
  char *e;
  if (!s || *s < '0' || *s > '9') return -1;
  errno = 0;
  *v = strtoul(s, &e, 10);
  return *e || errno ? -1 : 0;
}

/* unescape - tcpsvd's msg: \n, \r and \\ */
static int unescape(stralloc *out, const char *s)
{
  out->len = 0;
  for (; *s; ++s) {
    char c = *s;
    if (c == '\\' && (s[1] == 'n' || s[1] == 'r' || s[1] == '\\')) {
      ++s;
      c = *s == 'n' ? '\n' : *s == 'r' ? '\r' : '\\';
    }
    if (!stralloc_append(out, &c)) return -1;
  }
  return 0;
}

/* ---------------------------------------------------------------- the child's environment */

static int env_set(struct conn *c, const char *name, const char *value)
{
  if (!stralloc_cats(&c->env, name)) return -1;
  if (value && (!stralloc_cats(&c->env, "=") || !stralloc_cats(&c->env, value))) return -1;
  return stralloc_0(&c->env) ? 0 : -1;
}

static size_t namelen(const char *e)
{
  return strcspn(e, "=");
}

/* env_get - the value the child would see: the last change, else the front's environment */
static const char *env_get(const struct conn *c, const char *name)
{
  size_t i = 0, n = strlen(name);
  const char *found = 0;
  int hit = 0;
  while (i < c->env.len) {
    const char *e = c->env.s + i;
    size_t l = strlen(e);
    if (namelen(e) == n && !memcmp(e, name, n)) { hit = 1; found = e[n] == '=' ? e + n + 1 : 0; }
    i += l + 1;
  }
  return hit ? found : getenv(name);
}

static int changed(const struct conn *c, const char *e, size_t n)
{
  size_t i = 0;
  while (i < c->env.len) {
    const char *x = c->env.s + i;
    if (namelen(x) == n && !memcmp(x, e, n)) return 1;
    i += strlen(x) + 1;
  }
  return 0;
}

/* envp - the front's environment without the names changed, then the last value of each set */
static char **envp(struct conn *c)
{
  size_t nb = 0, nc = 0, i, k = 0;
  char **v, **e;
  for (e = baseenv; *e; ++e) ++nb;
  for (i = 0; i < c->env.len; i += strlen(c->env.s + i) + 1) ++nc;
  if (!(v = malloc((nb + nc + 1) * sizeof *v))) return 0;
  for (e = baseenv; *e; ++e)
    if (!changed(c, *e, namelen(*e))) v[k++] = *e;
  for (i = 0; i < c->env.len; i += strlen(c->env.s + i) + 1) {
    char *x = c->env.s + i;
    size_t n = namelen(x), j;
    int later = 0;
    if (x[n] != '=') continue;
    for (j = i + strlen(x) + 1; j < c->env.len; j += strlen(c->env.s + j) + 1)
      if (namelen(c->env.s + j) == n && !memcmp(c->env.s + j, x, n)) { later = 1; break; }
    if (!later) v[k++] = x;
  }
  v[k] = 0;
  return v;
}

/* ---------------------------------------------------------------- logging */

static void log_conn(const char *event, const struct conn *c, const char *reason)
{
  if (!log_on(LOG_INFO)) return;
  log_start(event);
  log_str("ip", c->ip);
  log_str("port", c->port);
  if (reason) log_str("reason", reason);
  log_ulong("held_ms", (unsigned long)(now_ms() - c->start));
  log_end();
}

static void summary(const char *event)
{
  log_start(event);
  log_ulong("accepted", cnt.accepted);
  log_ulong("handed", cnt.handed);
  log_ulong("refused_dnsbl", cnt.dnsbl);
  log_ulong("refused_early", cnt.early);
  log_ulong("denied", cnt.denied);
  log_ulong("refused_perip", cnt.perip);
  log_ulong("refused_connrate", cnt.connrate);
  log_ulong("gone", cnt.gone);
  log_ulong("spawn_failed", cnt.spawnfail);
  if (spare_want) log_ulong("handed_to_spare", cnt.spared);
  log_ulong("errors", cnt.errors);
  log_ulong("held", (unsigned long)nused - nready);
  log_ulong("ready", nready);
  log_ulong("children", nchild);
  log_end();
}

/* ---------------------------------------------------------------- epoll */

static uint64_t tag(int type, unsigned idx, unsigned gen)
{
  return (uint64_t)type << 60 | (uint64_t)(idx & 0xfffffff) << 32 | gen;
}

static void ep_ctl(int op, int fd, unsigned events, uint64_t t)
{
  struct epoll_event e;
  memset(&e, 0, sizeof e);
  e.events = events;
  e.data.u64 = t;
  if (epoll_ctl(ep, op, fd, &e) == -1 && op != EPOLL_CTL_DEL) die("epoll_ctl", 0);
}

/* watch - the client's input into the loop (on) or out; -1 when the kernel refuses (ENOMEM,
 * max_user_watches): the caller does without, the daemon goes on */
static int watch(struct conn *c, int on)
{
  struct epoll_event e;
  if (on == c->watching) return 0;
  memset(&e, 0, sizeof e);
  e.events = EPOLLIN;
  e.data.u64 = tag(EV_CONN, (unsigned)(c - conns), c->gen);
  if (epoll_ctl(ep, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, c->fd, &e) == -1 && on) {
    if (log_on(LOG_ERROR)) {
      log_start("error");
      log_str("what", "epoll_ctl");
      log_str("errno", strerror(errno));
      log_end();
    }
    return -1;
  }
  c->watching = on;
  return 0;
}

static int can_accept(void)
{
  return !paused && nchild + nready < maxchild && (unsigned long)nused < maxhold;
}

static void listener_update(void)
{
  int want = can_accept();
  if (want == listening) return;
  ep_ctl(EPOLL_CTL_MOD, lfd, want ? EPOLLIN : 0, tag(EV_LISTEN, 0, 0));
  listening = want;
}

/* ---------------------------------------------------------------- connections */

static struct conn *conn_new(void)
{
  struct conn *c;
  if (!nfree) return 0;
  c = &conns[freelist[--nfree]];
  c->upos = nused;
  used[nused++] = (int)(c - conns);
  ++c->gen;
  c->phase = PH_CHECK;
  c->env.len = c->cmd.len = 0;
  c->pending = c->wl = c->wlfail = c->score = 0;
  c->listed = -1;
  c->delaying = c->talked = c->watching = c->ncmds = c->exec = 0;
  c->blen = 0;
  c->delay_end = c->dns_end = c->deadline = 0;
  c->next = -1;
  return c;
}

static void conn_free(struct conn *c, int closefd)
{
  int idx = (int)(c - conns), last;
  /* close() ends the registration (no other process has this socket: a child's copy was
   * unwatched in hand_on); otherwise say so */
  if (c->watching && !closefd) watch(c, 0);
  c->watching = 0;
  if (closefd && c->fd >= 0) close(c->fd);
  c->fd = -1;
  c->phase = PH_FREE;
  ++c->gen;
  last = used[--nused];
  used[c->upos] = last;
  conns[last].upos = c->upos;
  freelist[nfree++] = idx;
  if (c->env.a > 4096) { stralloc_free(&c->env); }  /* bounded: a big cdb value is not kept */
  if (c->cmd.a > 4096) { stralloc_free(&c->cmd); }
}

/* drain - what the client sent (closing on unread input would reset the connection, and the
 * client would not see the last reply) */
static void drain(int fd)
{
  char junk[4096];
  int i;
  for (i = 0; i < 16 && recv(fd, junk, sizeof junk, MSG_DONTWAIT) > 0; ++i) {}
}

static void say(int fd, const char *s)
{
  if (send(fd, s, strlen(s), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {}  /* a fresh socket: fits */
}

static void close_client(struct conn *c)
{
  drain(c->fd);
  conn_free(c, 1);
}

static int per_ip(const unsigned char *addr)
{
  int n = 0, i;
  unsigned long k;
  for (i = 0; i < nused; ++i)
    if (!memcmp(conns[used[i]].addr, addr, 16)) ++n;
  for (k = 0; k < nchild; ++k)
    if (!memcmp(children[k].addr, addr, 16)) ++n;
  return n;
}

/* spawn - program (or an X instruction's sh -c) on the socket; 0, -1 */
/* ---------------------------------------------------------------- spare processes (-s) */

static void spare_drop(int k, int term)
{
  if (term) kill(spares[k].pid, SIGTERM);
  close(spares[k].fd);  /* out of the epoll set with it */
  spares[k] = spares[--nspare];
}

static void spares_stop(const char *why)
{
  if (!spares_off && log_on(LOG_ERROR)) {
    log_start("error");
    log_str("what", "spare");
    log_str("reason", why);
    log_str("act", "no more spare processes: a process per client from now on");
    log_end();
  }
  spares_off = 1;
  while (nspare) spare_drop(nspare - 1, 1);
}

/* start - argv with fd as descriptors 0 and 1, default signals, an empty signal mask: 0 and
 * *pid, or posix_spawnp's error */
static int start(char *const *argv, char **env, int fd, pid_t *pid)
{
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  sigset_t none, def;
  int r;
  sigemptyset(&none);
  sigemptyset(&def);
  sigaddset(&def, SIGPIPE);
  sigaddset(&def, SIGCHLD);
  sigaddset(&def, SIGTERM);
  sigaddset(&def, SIGHUP);
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fd, 0);
  posix_spawn_file_actions_adddup2(&fa, fd, 1);
  posix_spawnattr_init(&at);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &def);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  r = posix_spawnp(pid, argv[0], &fa, &at, argv, env);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  return r;
}

/* spare_start - the program started with the handoff socket as 0 and 1 and HANDOFF_ENV=0 */
static void spare_start(void)
{
  pid_t pid;
  int sv[2], r;
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1) { spares_stop("socketpair"); return; }
  r = start(prog, spareenv, sv[1], &pid);
  close(sv[1]);
  if (r) { close(sv[0]); errno = r; spares_stop("spawn"); return; }
  fcntl(sv[0], F_SETFL, O_NONBLOCK);
  spares[nspare].pid = pid;
  spares[nspare].fd = sv[0];
  spares[nspare].ready = 0;
  ++nspare;
  ep_ctl(EPOLL_CTL_ADD, sv[0], EPOLLIN, tag(EV_SPARE, (unsigned)sv[0], 0));
}

static void spares_fill(void)
{
  while (!spares_off && (unsigned long)nspare < spare_want && !got_term) spare_start();
}

/* spare_input - "R" from a spare: ready; anything else, or its end before that: the program
 * does not take clients this way (or fails at start), so the front stops pre-starting */
static void spare_input(int fd)
{
  char b[64];
  ssize_t n;
  int k;
  for (k = 0; k < nspare && spares[k].fd != fd; ++k) {}
  if (k == nspare) return;
  n = read(fd, b, sizeof b);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n == 1 && b[0] == HANDOFF_READY && !spares[k].ready) { spares[k].ready = 1; return; }
  if (n > 0) { spares_stop("the program does not take its client from mxguard-front (-s)"); return; }
  if (!spares[k].ready) { spares_stop("a spare process ended before it was ready"); return; }
  spare_drop(k, 0);  /* ended while waiting (killed): started again by spares_fill */
}

/* spare_take - c to a ready spare process: 0 handed, -1 not (none ready, or it failed) */
static int spare_take(struct conn *c)
{
  int k;
  for (k = 0; k < nspare; ++k) {
    pid_t pid = spares[k].pid;
    if (!spares[k].ready) continue;
    if (handoff_send(spares[k].fd, c->env.s, c->env.len, c->fd) == -1) {
      spare_drop(k, 1);
      --k;
      continue;
    }
    spare_drop(k, 0);
    children[nchild].pid = pid;
    memcpy(children[nchild].addr, c->addr, 16);
    ++nchild;
    ++cnt.handed;
    ++cnt.spared;
    if (log_on(LOG_REPLY)) {
      log_start("handed");
      log_str("ip", c->ip);
      log_str("port", c->port);
      log_ulong("child", (unsigned long)pid);
      log_str("spare", "yes");
      log_ulong("held_ms", (unsigned long)(now_ms() - c->start));
      log_end();
    }
    return 0;
  }
  return -1;
}

static int spawn(struct conn *c)
{
  char **env, *shargv[4];
  char *const *argv = prog;
  pid_t pid;
  int r, fl;
  fl = fcntl(c->fd, F_GETFL);
  if (fl != -1) fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK);  /* the program gets a blocking socket */
  if (!c->exec && nspare && spare_take(c) == 0) return 0;
  if (!(env = envp(c))) return -1;
  if (c->exec) {
    shargv[0] = (char *)"/bin/sh"; shargv[1] = (char *)"-c"; shargv[2] = c->cmd.s; shargv[3] = 0;
    argv = shargv;
  }
  r = start(argv, env, c->fd, &pid);
  free(env);
  if (r) {
    errno = r;
    ++cnt.spawnfail;
    if (log_on(LOG_ERROR)) {
      log_start("error");
      log_str("what", "spawn");
      log_str("program", argv[0]);
      log_str("errno", strerror(r));
      log_end();
    }
    return -1;
  }
  children[nchild].pid = pid;
  memcpy(children[nchild].addr, c->addr, 16);
  ++nchild;
  ++cnt.handed;
  if (log_on(LOG_REPLY)) {
    log_start("handed");
    log_str("ip", c->ip);
    log_str("port", c->port);
    log_ulong("child", (unsigned long)pid);
    log_ulong("held_ms", (unsigned long)(now_ms() - c->start));
    log_end();
  }
  return 0;
}

/* hand_on - a survivor: a child now, or the ready queue while -c children run */
static void hand_on(struct conn *c)
{
  if (c->watching) watch(c, 0);
  if (nchild >= maxchild) {
    c->phase = PH_READY;
    c->next = -1;
    if (readytail >= 0) conns[readytail].next = (int)(c - conns);
    else readyhead = (int)(c - conns);
    readytail = (int)(c - conns);
    ++nready;
    return;
  }
  spawn(c);
  conn_free(c, 1);
}

static void run_ready(void)
{
  while (readyhead >= 0 && nchild < maxchild) {
    struct conn *c = &conns[readyhead];
    readyhead = c->next;
    if (readyhead < 0) readytail = -1;
    --nready;
    spawn(c);
    conn_free(c, 1);
  }
}

static void refuse_dnsbl(struct conn *c)
{
  char line[400];
  const char *zone = zones[c->listed].z.name;
  ++cnt.dnsbl;
  if (log_on(LOG_INFO)) {
    char why[300];
    snprintf(why, sizeof why, "dnsbl:%s", zone);
    log_conn("refuse", c, why);
  }
  snprintf(line, sizeof line, "554 5.7.1 Service unavailable; client [%s] blocked using %s\r\n",
           c->ip, zone);
  say(c->fd, line);
  c->phase = PH_REFUSE;
  c->deadline = now_ms() + refusewait;
  c->blen = 0;
  /* no dialogue when the kernel will not watch, or when three quarters of the held slots are
   * taken: bots kept talking must not crowd out the clients still to be checked */
  if ((unsigned long)nused * 4 >= maxhold * 3 || watch(c, 1) == -1) close_client(c);
}

/* decide - a held client after any news: refuse, hand on or keep waiting */
static void decide(struct conn *c, long long now)
{
  int dnsdone;
  if (c->phase != PH_CHECK) return;
  if (c->wl) { hand_on(c); return; }  /* a DNSWL hit: the program decides everything itself */
  dnsdone = !c->pending || now >= c->dns_end;
  if (!dnsdone) return;
  if (c->score >= 1 && c->listed >= 0 && !c->wlfail && !c->pending) { refuse_dnsbl(c); return; }
  if (c->delaying && now < c->delay_end) return;
  if (c->delaying) env_set(c, "GREETDELAY", 0);  /* waited out here: the program must not wait again */
  hand_on(c);
}

/* ---------------------------------------------------------------- DNS */

static int aresfds[64], naresfds;

static void sockstate(void *data, ares_socket_t fd, int readable, int writable)
{
  int i;
  unsigned ev = (readable ? EPOLLIN : 0) | (writable ? EPOLLOUT : 0);
  (void)data;
  for (i = 0; i < naresfds && aresfds[i] != fd; ++i) {}
  if (!ev) {
    if (i < naresfds) { ep_ctl(EPOLL_CTL_DEL, fd, 0, 0); aresfds[i] = aresfds[--naresfds]; }
    return;
  }
  if (i < naresfds) { ep_ctl(EPOLL_CTL_MOD, fd, ev, tag(EV_ARES, (unsigned)fd, 0)); return; }
  if (naresfds >= (int)(sizeof aresfds / sizeof *aresfds)) return;
  aresfds[naresfds++] = fd;
  ep_ctl(EPOLL_CTL_ADD, fd, ev, tag(EV_ARES, (unsigned)fd, 0));
}

static int sockcfg(ares_socket_t fd, int type, void *data)
{
  (void)type; (void)data;
  fcntl(fd, F_SETFD, FD_CLOEXEC);  /* never inherited by a child */
  return 0;
}

static void answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
  uintptr_t a = (uintptr_t)arg;
  unsigned idx = (unsigned)(a >> 40), zi = (unsigned)(a >> 32) & 0xff, gen = (unsigned)a;
  struct conn *c;
  struct ares_addrttl at[8];
  int n = 8, i, hit = 0, fail = 0;
  (void)timeouts;
  if (idx >= maxhold) return;
  c = &conns[idx];
  if (c->gen != gen || c->phase != PH_CHECK) return;  /* gone or decided meanwhile */
  --c->pending;
  if (status == ARES_SUCCESS && ares_parse_a_reply(abuf, alen, 0, at, &n) == ARES_SUCCESS) {
    for (i = 0; i < n; ++i) {
      unsigned char b[4];
      memcpy(b, &at[i].ipaddr, 4);
      if (dnsbl_match(&zones[zi].z, b)) hit = 1;
    }
  } else if (status != ARES_ENOTFOUND && status != ARES_ENODATA)
    fail = 1;  /* no answer, or one that does not parse: trouble, never a listing */
  if (zones[zi].z.weight < 0) {
    if (hit) c->wl = 1;
    if (fail) c->wlfail = 1;
  } else if (hit) {
    c->score += zones[zi].z.weight;
    if (c->listed < 0) c->listed = (int)zi;
  }
  if (fail && log_on(LOG_REPLY)) {
    log_start("dnsfail");
    log_str("ip", c->ip);
    log_str("zone", zones[zi].z.name);
    log_str("status", ares_strerror(status));
    log_end();
  }
  decide(c, now_ms());
}

/* ask - the front's zones for a client it may refuse (not a relay client, as the smtpd); the
 * smtpd's DNSWL zones where a hit changes what the front does: the refusal, or the greeting
 * delay (the smtpd does not delay a DNSWL-listed client, so neither may the front) */
static void ask(struct conn *c)
{
  int i, own = nblock && !env_get(c, "RELAYCLIENT");
  int theirs = (own || c->delaying) && !env_get(c, "DNSBLSKIP") && !env_get(c, "RBLSMTPD");
  if (!chok) return;
  for (i = 0; i < nzones; ++i) {
    char name[400];
    uintptr_t a = (uintptr_t)(c - conns) << 40 | (uintptr_t)i << 32 | c->gen;
    if (!(zones[i].smtpd ? theirs : own)) continue;
    if (dnsbl_revname(name, sizeof name, c->ip, zones[i].z.name) < 0) continue;
    ++c->pending;
    ares_query(ch, name, ns_c_in, ns_t_a, answer, (void *)a);
    if (c->phase != PH_CHECK) return;  /* answered at once (an error) and decided */
  }
}

/* servers - DNSSERVERS, else control/dnsservers, as c-ares' csv (blanks and commas separate);
 * 1 given, 0 none (resolv.conf), -1 unreadable */
static int servers(stralloc *csv)
{
  static stralloc sa;
  const char *x = getenv("DNSSERVERS");
  size_t i;
  csv->len = 0;
  if (!x) {
    int r = control_readfile(&sa, "control/dnsservers");
    if (r == -1) return -1;
    if (!r) return 0;
    for (i = 0; i < sa.len; ++i) if (!sa.s[i]) sa.s[i] = ',';
    if (!stralloc_0(&sa)) return -1;
    x = sa.s;
  }
  for (i = 0; x[i]; ++i) {
    char ch_ = x[i] == ' ' || x[i] == '\t' ? ',' : x[i];
    if (ch_ == ',' && (!csv->len || csv->s[csv->len - 1] == ',')) continue;
    if (!stralloc_append(csv, &ch_)) return -1;
  }
  while (csv->len && csv->s[csv->len - 1] == ',') --csv->len;
  if (!stralloc_0(csv)) return -1;
  return csv->len > 1;
}

static int addzone(const char *line, const char *src)
{
  if (nzones >= ZONES_MAX) { errno = 0; die("too many zones (32)", src); }
  if (dnsbl_parse_zone(line, &zones[nzones].z) == -1) { errno = 0; die("bad zone", line); }
  if (zones[nzones++].z.weight > 0) ++nblock;
  return 0;
}

static void dns_setup(void)
{
  static stralloc sa, csv;
  struct ares_options o;
  const char *x = getenv("FRONTDNSBL");
  int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS | ARES_OPT_SOCK_STATE_CB |
    ARES_OPT_FLAGS;
  int given;
  size_t i;
  if (x) {  /* zones separated by blanks */
    if (!stralloc_copys(&sa, x) || !stralloc_0(&sa)) die("out of memory", 0);
    for (i = 0; i < sa.len; ) {
      size_t n;
      while (sa.s[i] == ' ' || sa.s[i] == '\t' || sa.s[i] == ',') ++i;
      if (!sa.s[i]) break;
      n = strcspn(sa.s + i, " \t,");
      sa.s[i + n] = 0;
      addzone(sa.s + i, "FRONTDNSBL");
      i += n + 1;
    }
  } else {
    int r = control_readfile(&sa, "control/frontdnsbl");
    if (r == -1) die("unable to read", "control/frontdnsbl");
    for (i = 0; r == 1 && i < sa.len; i += strlen(sa.s + i) + 1)
      if (sa.s[i] && sa.s[i] != '#') addzone(sa.s + i, "control/frontdnsbl");
  }
  {  /* the smtpd's DNSWL zones (negative weights in control/dnsbl), unless it reads none */
    int r = getenv("DNSBLSKIP") || getenv("RBLSMTPD") ? 0 : control_readfile(&sa, "control/dnsbl");
    if (r == -1) die("unable to read", "control/dnsbl");
    for (i = 0; r == 1 && i < sa.len; i += strlen(sa.s + i) + 1) {
      struct dnsbl_zone z;
      if (!sa.s[i] || sa.s[i] == '#') continue;
      if (dnsbl_parse_zone(sa.s + i, &z) == -1) {  /* the smtpd logs and skips it too */
        log_start("front");
        log_str("warning", "bad line skipped");
        log_str("file", "control/dnsbl");
        log_clients("line", sa.s + i);
        log_end();
        continue;
      }
      if (z.weight > 0 || nzones >= ZONES_MAX) { free(z.name); continue; }
      zones[nzones].z = z;
      zones[nzones++].smtpd = 1;
    }
  }
  if ((x = getenv("FRONTREFUSEWAIT"))) {
    unsigned long v;
    if (num(x, &v) == -1 || v < 1 || v > 300) { errno = 0; die("bad FRONTREFUSEWAIT", x); }
    refusewait = (long)v * 1000;
  }
  if ((x = getenv("FRONTDNSBUDGET"))) {
    unsigned long v;
    if (num(x, &v) == -1 || v < 1 || v > 120000) { errno = 0; die("bad FRONTDNSBUDGET", x); }
    dnsbudget = (long)v;
  }
  if (!nzones) return;
  if ((given = servers(&csv)) == -1) die("unable to read", "control/dnsservers");
  memset(&o, 0, sizeof o);
  if (given) {
    mask |= ARES_OPT_SERVERS | ARES_OPT_DOMAINS | ARES_OPT_SORTLIST | ARES_OPT_NDOTS;
    o.ndots = 1;
  }
  o.timeout = (int)(dnsbudget / 4 < 50 ? 50 : dnsbudget / 4);
  o.tries = 2;
  o.lookups = (char *)"b";
  o.flags = ARES_FLAG_STAYOPEN;  /* a daemon: no socket, connect and close per query */
  o.sock_state_cb = sockstate;
  if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS ||
      ares_init_options(&ch, &o, mask) != ARES_SUCCESS)
    die("c-ares init", 0);
  if (given && ares_set_servers_ports_csv(ch, csv.s) != ARES_SUCCESS) die("bad DNS servers", csv.s);
  ares_set_socket_configure_callback(ch, sockcfg, 0);
  chok = 1;
}

/* ---------------------------------------------------------------- per-connection settings */

/* tcprules - tcpserver -x: IP, IP prefixes ending in '.', then "" (no names: -H, -R);
 * 1 allowed, 0 denied, -1 unreadable */
static int tcprules(struct conn *c)
{
  static stralloc v;
  struct cdb db = {0};
  char key[INET6_ADDRSTRLEN];
  size_t len = strlen(c->ip), i;
  int fd, r = 0, deny = 0;
  unsigned dl;
  fd = open_read(rulescdb);
  if (fd == -1) return errno == ENOENT ? 1 : -1;  /* as tcpserver: no file, no rules */
  if (control_cdbcheck(fd) == -1) { close(fd); return -1; }
  cdb_init(&db, fd);
  memcpy(key, c->ip, len + 1);
  if ((r = cdb_find(&db, (const unsigned char *)key, len)) == 0 && !strchr(c->ip, ':')) {
    while (len) {
      while (len && key[len - 1] != '.') --len;
      if (!len) break;
      if ((r = cdb_find(&db, (const unsigned char *)key, len))) break;
      --len;  /* past the dot: the next shorter prefix */
    }
  }
  if (!r) r = cdb_find(&db, (const unsigned char *)"", 0);
  if (r == 1) {
    dl = cdb_datalen(&db);
    if (dl > VALUE_MAX || !stralloc_ready(&v, dl + 1) ||
        cdb_read(&db, (unsigned char *)v.s, dl, cdb_datapos(&db)) == -1)
      r = -1;
    else {
      v.s[dl] = 0;
      for (i = 0; i < dl; i += strlen(v.s + i) + 1) {
        char *item = v.s + i, *eq;
        if (item[0] == 'D') deny = 1;
        else if (item[0] == '+' && (eq = strchr(item + 1, '='))) {
          *eq = 0;
          if (env_set(c, item + 1, eq + 1) == -1) r = -1;
          *eq = '=';
        }
      }
    }
  }
  cdb_free(&db);
  close(fd);
  if (r == -1) return -1;
  return !deny;
}

struct ictx { struct conn *c; long limit; int err, msg; };
static stralloc cmsg;  /* the message of the C line that matched */

static void iset(void *arg, const char *name, const char *value)
{
  struct ictx *x = arg;
  if (env_set(x->c, name, value) == -1) x->err = 1;
}

static void iother(void *arg, const char *line)
{
  struct ictx *x = arg;
  if (line[0] == 'C') {  /* Cn[:msg]: this client's concurrency limit, with -C only */
    unsigned long n = 0;
    const char *p = line + 1;
    while (*p >= '0' && *p <= '9') n = n * 10 + (unsigned long)(*p++ - '0');
    x->limit = (long)n;  /* the last C line wins */
    x->msg = 0;
    if (*p == ':') x->msg = unescape(&cmsg, p + 1) == 0;
    return;
  }
  if (log_on(LOG_ERROR)) {
    log_start("instruct");
    log_str("ip", x->c->ip);
    log_str("warning", line[0] == '=' ? "=host DNS checks are not supported" : "unknown instruction");
    log_clients("line", line);
    log_end();
  }
}

/* ---------------------------------------------------------------- GREETDELAY */

static stralloc exempt_nets;
static int tarpitbudget, redis;

/* exempt - tarpit.c's exempt() without the DNSWL (not known yet at this point) */
static int exempt(const struct conn *c)
{
  size_t i;
  if (env_get(c, "RELAYCLIENT") || env_get(c, "LIMITEXEMPT")) return 1;
  for (i = 0; i < exempt_nets.len; i += strlen(exempt_nets.s + i) + 1)
    if (tarpit_in_net(c->ip, exempt_nets.s + i)) return 1;  /* the smtpd's own test */
  return 0;
}

/* connrate - CONNRATE as tarpit.c's conn_limits() takes it, in the same LMDB bucket: 1 the
 * client is over it (421 here, no process), 0 go on. Taken here, it is removed from the
 * child's environment so it is not counted twice. Left to the smtpd: Redis (a round trip
 * would stall this loop), a bad value (the smtpd logs it), the store failing (fail open,
 * the smtpd tries again). */
static int connrate(struct conn *c)
{
  static const char *parts[3] = {"c", 0, "conn"};
  const char *x = env_get(c, "CONNRATE");
  char key[STORE_KEY_MAX + 1], client[64];
  struct store_op op;
  long lim, win, bits;
  if (!x || !*x || redis) return 0;
  if (tarpit_parse_rate(x, &lim, &win) == -1) return 0;
  if (exempt(c)) return 0;
  bits = 64;
  if ((x = env_get(c, "RATEIPV6PREFIX")) && (bits = tarpit_parse_ms(x, 1)) < 0) return 0;
  if (tarpit_net(client, sizeof client, c->ip, 32, (int)bits) == -1)
    snprintf(client, sizeof client, "%.60s", c->ip);
  parts[1] = client;
  memset(&op, 0, sizeof op);
  op.type = STORE_TAKE; op.key = store_key(key, parts, 3); op.n = 1;
  op.limit = lim; op.window_s = win; op.atonce = 1;
  if (store_run(&op, 1) == -1) return 0;
  env_set(c, "CONNRATE", 0);
  if (op.ok) return 0;
  if (log_on(LOG_INFO)) {
    log_start("limit");
    log_str("what", "connrate");
    log_clients("key", op.key);
    log_ulong("count", (unsigned long)op.level);
    log_ulong("limit", (unsigned long)op.limit);
    log_end();
  }
  return 1;
}

/* delay_setup - the front waits GREETDELAY out only where tarpit.c's greetdelay() would wait
 * exactly that long for this client with no DNS fact: otherwise the program does it */
static void delay_setup(struct conn *c)
{
  const char *g = env_get(c, "GREETDELAY");
  long ms;
  if (!g) return;
  if (env_get(c, "GREETDELAY_NOPTR") || env_get(c, "GREETDELAY_DYNAMIC")) return;  /* a PTR class */
  if (env_get(c, "SMTPS")) return;            /* implicit TLS: the client speaks first */
  if (env_get(c, "TARPITBUDGET") || tarpitbudget > 0) return;  /* a site-wide budget: the store */
  if ((ms = tarpit_parse_ms(g, 1000)) <= 0) return;  /* none, or bad: the program logs it */
  if (exempt(c)) return;  /* the smtpd would not delay it */
  if (ms > DELAY_MAX_MS) ms = DELAY_MAX_MS;
  if (watch(c, 1) == -1) return;  /* cannot see an early talker: the smtpd delays */
  c->delaying = 1;
  c->delay_end = c->start + ms;
}

static int off(const char *x)
{
  return x && (!case_diffs(x, "0") || !case_diffs(x, "no") || !case_diffs(x, "off"));
}

/* ---------------------------------------------------------------- events */

static void conn_input(struct conn *c)
{
  char b[LINE_MAX_];
  ssize_t n;
  if (c->phase == PH_CHECK) {  /* input before the banner */
    n = recv(c->fd, b, 1, MSG_PEEK);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      ++cnt.gone;
      if (log_on(LOG_REPLY)) log_conn("gone", c, "closed");
      conn_free(c, 1);
      return;
    }
    if (n < 0) return;
    {
      int drop = !off(env_get(c, "DROPRUSHGREET"));
      if (log_on(LOG_INFO)) {
        log_start("earlytalker");
        log_str("ip", c->ip);
        log_ulong("after_ms", (unsigned long)(now_ms() - c->start));
        log_str("act", drop ? "refused" : "logged");
        log_end();
      }
      if (!drop) { c->talked = 1; watch(c, 0); return; }  /* the rest of the delay, then on */
      ++cnt.early;
      drain(c->fd);
      say(c->fd, "554 5.5.0 SMTP protocol violation\r\n");
      close_client(c);
      return;
    }
  }
  /* PH_REFUSE: 221 to QUIT, 503 to anything else, closed after REFUSE_CMDS */
  n = recv(c->fd, c->buf + c->blen, sizeof c->buf - c->blen, MSG_DONTWAIT);
  if (n <= 0) {
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    conn_free(c, 1);
    return;
  }
  c->blen += (size_t)n;
  for (;;) {
    char *nl = memchr(c->buf, '\n', c->blen);
    size_t l;
    if (!nl && c->blen < sizeof c->buf) return;
    l = nl ? (size_t)(nl - c->buf) + 1 : c->blen;
    if (l >= 4 && !case_diffb(c->buf, 4, "quit") && (l == 4 || c->buf[4] == '\r' || c->buf[4] == '\n' ||
        c->buf[4] == ' ')) {
      say(c->fd, "221 2.0.0 closing connection\r\n");
      close_client(c);
      return;
    }
    say(c->fd, "503 5.7.1 Service unavailable: this connection was refused, send QUIT\r\n");
    memmove(c->buf, c->buf + l, c->blen - l);
    c->blen -= l;
    if (++c->ncmds >= REFUSE_CMDS) { close_client(c); return; }
  }
}

static void reap(void)
{
  int st;
  pid_t pid;
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
    unsigned long k;
    int child = 0;
    for (k = 0; k < nchild; ++k)
      if (children[k].pid == pid) { children[k] = children[--nchild]; child = 1; break; }
    if (!child) {  /* a spare process */
      int j;
      for (j = 0; j < nspare && spares[j].pid != pid; ++j) {}
      if (j < nspare) {
        if (!spares[j].ready) spares_stop("a spare process ended before it was ready");
        else spare_drop(j, 0);
      }
    }
    if (log_on(LOG_REPLY)) {
      log_start("end");
      log_ulong("child", (unsigned long)pid);
      if (WIFSIGNALED(st)) log_ulong("signal", (unsigned long)WTERMSIG(st));
      else log_ulong("status", (unsigned long)WEXITSTATUS(st));
      log_end();
    }
  }
}

static void on_accept(int fd, struct sockaddr_storage *ss)
{
  struct sockaddr_storage ls;
  socklen_t ll = sizeof ls;
  struct conn *c = conn_new();
  char num_[24];
  long limit;
  stralloc *msg = &perip_msg;
  int r;
  if (!c) { close(fd); return; }  /* cannot happen: accept() stops at maxhold */
  c->fd = fd;
  c->start = now_ms();
  memset(c->addr, 0, 16);
  if (ss->ss_family == AF_INET6) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    memcpy(c->addr, &s6->sin6_addr, 16);
    inet_ntop(AF_INET6, &s6->sin6_addr, c->ip, sizeof c->ip);
    snprintf(c->port, sizeof c->port, "%u", ntohs(s6->sin6_port));
  } else {
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    c->addr[10] = c->addr[11] = 0xff;
    memcpy(c->addr + 12, &s4->sin_addr, 4);
    inet_ntop(AF_INET, &s4->sin_addr, c->ip, sizeof c->ip);
    snprintf(c->port, sizeof c->port, "%u", ntohs(s4->sin_port));
  }
  if (getsockname(fd, (struct sockaddr *)&ls, &ll) == 0 && ls.ss_family == AF_INET6) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ls;
    inet_ntop(AF_INET6, &s6->sin6_addr, c->lip, sizeof c->lip);
    snprintf(c->lport, sizeof c->lport, "%u", ntohs(s6->sin6_port));
  } else {
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ls;
    inet_ntop(AF_INET, &s4->sin_addr, c->lip, sizeof c->lip);
    snprintf(c->lport, sizeof c->lport, "%u", ntohs(s4->sin_port));
  }
  ++cnt.accepted;
  /* tcpserver's variables first: the cdbs may change them */
  if (env_set(c, "PROTO", "TCP") || env_set(c, "TCPLOCALIP", c->lip) ||
      env_set(c, "TCPLOCALPORT", c->lport) || env_set(c, "TCPLOCALHOST", localname) ||
      env_set(c, "TCPREMOTEIP", c->ip) || env_set(c, "TCPREMOTEPORT", c->port) ||
      env_set(c, "TCPREMOTEHOST", 0) || env_set(c, "TCPREMOTEINFO", 0))
    goto trouble;
  if (rulescdb) {
    r = tcprules(c);
    if (r == -1) goto trouble;
    if (!r) { ++cnt.denied; log_conn("deny", c, "tcprules"); conn_free(c, 1); return; }
  }
  limit = (long)peripmax;
  if (instructcdb) {
    static stralloc v;
    const char *key;
    struct ictx x;
    x.c = c; x.limit = -1; x.err = 0; x.msg = 0;
    r = instruct_get(instructcdb, c->ip, 0, &v, &key);
    if (r == INSTRUCT_ERROR) goto trouble;
    if (r == INSTRUCT_DENY) { ++cnt.denied; log_conn("deny", c, "instruct"); conn_free(c, 1); return; }
    if (r == INSTRUCT_ALLOW) instruct_lines(v.s, v.len, iset, iother, &x);
    if (r == INSTRUCT_EXEC) {
      if (!stralloc_copyb(&c->cmd, v.s, v.len) || !stralloc_0(&c->cmd)) goto trouble;
      c->exec = 1;
    }
    if (x.err) goto trouble;
    if (x.limit >= 0 && peripmax) {  /* as tcpsvd: C lines count with -C only */
      limit = x.limit;
      if (x.msg) msg = &cmsg;
    }
  }
  if (peripmax) {
    int n = per_ip(c->addr);  /* this one included */
    if (limit > 0 && n > limit) {
      ++cnt.perip;
      log_conn("refuse", c, "perip");
      if (msg->len && send(fd, msg->s, msg->len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {}
      close_client(c);
      return;
    }
    snprintf(num_, sizeof num_, "%d", n);
    if (env_set(c, "TCPCONCURRENCY", num_)) goto trouble;
  }
  if (connrate(c)) {  /* tarpit.c's reply, before the delay as there */
    ++cnt.connrate;
    log_conn("refuse", c, "connrate");
    drain(c->fd);
    say(c->fd, "421 4.7.0 too many connections from your address, try again later\r\n");
    close_client(c);
    return;
  }
  delay_setup(c);
  c->dns_end = c->start + dnsbudget;
  if (nzones && !env_get(c, "RELAYCLIENT")) ask(c);
  if (c->phase == PH_CHECK) decide(c, now_ms());
  return;
trouble:
  ++cnt.errors;
  log_conn("error", c, "settings");
  conn_free(c, 1);
}

static void do_accept(void)
{
  int i;
  for (i = 0; i < 64 && can_accept(); ++i) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd == -1) {
      if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) return;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        paused = 1;
        pause_until = now_ms() + PAUSE_MS;
        if (log_on(LOG_ERROR)) {
          log_start("error");
          log_str("what", "accept");
          log_str("errno", strerror(errno));
          log_str("act", "paused");
          log_end();
        }
        return;
      }
      return;
    }
    on_accept(fd, &ss);
  }
}

static void timers(long long now)
{
  int i;
  if (paused && now >= pause_until) paused = 0;
  for (i = 0; i < nused; ) {
    struct conn *c = &conns[used[i]];
    int before = nused;
    if (c->phase == PH_CHECK && (now >= c->dns_end || (c->delaying && now >= c->delay_end)))
      decide(c, now);
    else if (c->phase == PH_REFUSE && now >= c->deadline)
      close_client(c);
    if (nused == before) ++i;  /* a freed slot was filled by the last one: look at it again */
  }
}

static int next_timeout(long long now)
{
  long long t = -1;
  int i;
  if (paused) t = pause_until;
  for (i = 0; i < nused; ++i) {
    struct conn *c = &conns[used[i]];
    long long d = -1;
    if (c->phase == PH_CHECK) {  /* the next moment decide() may come to another answer */
      if (c->pending) d = c->dns_end;
      if (c->delaying && c->delay_end > now && (d == -1 || c->delay_end < d)) d = c->delay_end;
    } else if (c->phase == PH_REFUSE) d = c->deadline;
    if (d >= 0 && (t == -1 || d < t)) t = d;
  }
  if (chok) {
    struct timeval tv, *tvp = ares_timeout(ch, 0, &tv);
    if (tvp) {
      long long d = now + tvp->tv_sec * 1000 + (tvp->tv_usec + 999) / 1000;
      if (t == -1 || d < t) t = d;
    }
  }
  if (t == -1) return -1;
  return t <= now ? 0 : (int)(t - now > 60000 ? 60000 : t - now);
}

/* ---------------------------------------------------------------- set-up */

static void onsig(int s)
{
  int e = errno;
  char b = (char)s;
  if (s == SIGTERM) got_term = 1;
  if (s == SIGHUP) got_hup = 1;
  if (write(sigpipe_[1], &b, 1)) {}
  errno = e;
}

static int port_of(const char *s, unsigned long *p)
{
  if (!strcmp(s, "smtp")) { *p = 25; return 0; }
  if (!strcmp(s, "submission")) { *p = 587; return 0; }
  if (!strcmp(s, "smtps") || !strcmp(s, "submissions")) { *p = 465; return 0; }
  return num(s, p) == -1 || *p > 65535 ? -1 : 0;
}

static void bind_listener(const char *host, const char *portstr)
{
  struct sockaddr_storage ss;
  socklen_t sl;
  unsigned long port;
  int one = 1;
  memset(&ss, 0, sizeof ss);
  if (port_of(portstr, &port) == -1) { errno = 0; die("bad port", portstr); }
  if (!strcmp(host, "0") || !strcmp(host, "0.0.0.0") || inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    if (!strcmp(host, "0")) s4->sin_addr.s_addr = htonl(INADDR_ANY);
    s4->sin_family = AF_INET;
    s4->sin_port = htons((unsigned short)port);
    sl = sizeof *s4;
    afam = AF_INET;
  } else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((unsigned short)port);
    sl = sizeof *s6;
    afam = AF_INET6;
  } else { errno = 0; die("host must be a numeric address, 0 or ::", host); }
  lfd = socket(afam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (lfd == -1) die("socket", 0);
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (afam == AF_INET6) setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(lfd, (struct sockaddr *)&ss, sl) == -1) die("unable to bind", host);
  if (listen(lfd, (int)backlog) == -1) die("listen", 0);
}

static void privileges(void)
{
  if (flagU) {
    unsigned long v;
    const char *x = getenv("GID");
    if (x) { if (num(x, &v) == -1) { errno = 0; die("bad $GID", x); } gid = (long)v; }
    x = getenv("UID");
    if (x) { if (num(x, &v) == -1) { errno = 0; die("bad $UID", x); } uid = (long)v; }
  }
  if (gid >= 0) {
    gid_t g = (gid_t)gid;
    if (setgroups(1, &g) == -1 || setgid(g) == -1) die("unable to set gid", 0);
  }
  if (uid >= 0 && setuid((uid_t)uid) == -1) die("unable to set uid", 0);
}

static void read_limits_files(void)
{
  int r = control_readfile(&exempt_nets, "control/limitexempt");
  if (r == -1) die("unable to read", "control/limitexempt");
  if (r == 0) exempt_nets.len = 0;
  if (!getenv("TARPITBUDGET") && control_readint(&tarpitbudget, "control/tarpitbudget") == -1)
    die("unable to read", "control/tarpitbudget");
  {
    static stralloc sa;
    int r2 = control_readfile(&sa, "control/redis");
    if (r2 == -1) die("unable to read", "control/redis");
    redis = r2 == 1 && sa.len;  /* the store is Redis: CONNRATE stays with the smtpd */
  }
}

int main(int argc, char **argv)
{
  int opt, i;
  struct sigaction sa;
  struct rlimit rl;
  unsigned long v;
  extern char **environ;
  log_init();
  while ((opt = getopt(argc, argv, "+vqc:C:m:s:x:i:u:g:Ul:b:RHhpP")) != -1) {
    switch (opt) {
      case 'v': verbose = 1; quiet = 0; break;
      case 'q': quiet = 1; verbose = 0; break;
      case 'c': if (num(optarg, &maxchild) == -1 || !maxchild) usage(); break;
      case 's': if (num(optarg, &spare_want) == -1 || spare_want > SPARE_MAX) usage(); break;
      case 'C': {
        char *colon = strchr(optarg, ':');
        if (colon) { *colon = 0; if (unescape(&perip_msg, colon + 1) == -1) usage(); }
        if (num(optarg, &peripmax) == -1) usage();
        break;
      }
      case 'm': if (num(optarg, &maxhold) == -1 || !maxhold) usage(); break;
      case 'x': rulescdb = optarg; break;
      case 'i': instructcdb = optarg; break;
      case 'u': if (num(optarg, &v) == -1) usage(); uid = (long)v; break;
      case 'g': if (num(optarg, &v) == -1) usage(); gid = (long)v; break;
      case 'U': flagU = 1; break;
      case 'l': localname = optarg; break;
      case 'b': if (num(optarg, &backlog) == -1) usage(); break;
      case 'R': case 'H': break;  /* what the front does anyway: no ident, no name lookups */
      case 'h': case 'p': case 'P': lookups = opt; break;  /* accepted, said at start: never done */
      default: usage();
    }
  }
  if (argc - optind < 3) usage();
  if (quiet) log_level = LOG_ERROR;
  if (verbose && log_level < LOG_REPLY) log_level = LOG_REPLY;
  prog = argv + optind + 2;
  /* the program's fds 0, 1: never one of ours */
  for (i = 0; i < 3; ++i)
    if (fcntl(i, F_GETFD) == -1) { int fd = open("/dev/null", O_RDWR); if (fd > 2) close(fd); }
  if (control_chdir() == -1) die("unable to switch to", control_home());
  read_limits_files();
  baseenv = environ;
  if (spare_want) {  /* the spares' environment: the front's, and the handoff socket on 0 */
    size_t n = 0, j;
    while (baseenv[n]) ++n;
    if (!(spareenv = malloc((n + 2) * sizeof *spareenv))) die("out of memory", 0);
    for (j = 0; j < n; ++j) spareenv[j] = baseenv[j];
    spareenv[n] = (char *)HANDOFF_ENV "=0";
    spareenv[n + 1] = 0;
  }
  if (getrlimit(RLIMIT_NOFILE, &rl) == -1) die("getrlimit", 0);
  if (!maxhold) maxhold = maxchild * 10 < 256 ? 256 : maxchild * 10;
  if (rl.rlim_cur != RLIM_INFINITY && maxhold + 64 > rl.rlim_cur) {
    if (rl.rlim_cur < 80) { errno = 0; die("too few file descriptors (ulimit -n)", 0); }
    maxhold = rl.rlim_cur - 64;
  }
  if (maxhold > 0xfffff) maxhold = 0xfffff;
  conns = calloc(maxhold, sizeof *conns);
  used = calloc(maxhold, sizeof *used);
  freelist = calloc(maxhold, sizeof *freelist);
  children = calloc(maxchild, sizeof *children);
  if (!conns || !used || !freelist || !children) die("out of memory", 0);
  for (i = (int)maxhold - 1; i >= 0; --i) { freelist[nfree++] = i; conns[i].fd = -1; }
  if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1) die("epoll_create1", 0);
  if (pipe2(sigpipe_, O_CLOEXEC | O_NONBLOCK) == -1) die("pipe", 0);
  ep_ctl(EPOLL_CTL_ADD, sigpipe_[0], EPOLLIN, tag(EV_SIG, 0, 0));
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = onsig;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGCHLD, &sa, 0);
  sigaction(SIGTERM, &sa, 0);
  sigaction(SIGHUP, &sa, 0);
  signal(SIGPIPE, SIG_IGN);
  bind_listener(argv[optind], argv[optind + 1]);
  privileges();
  dns_setup();
  ep_ctl(EPOLL_CTL_ADD, lfd, EPOLLIN, tag(EV_LISTEN, 0, 0));
  listening = 1;
  if (log_on(LOG_INFO)) {
    log_start("front");
    log_str("status", "listening");
    log_str("host", argv[optind]);
    log_str("port", argv[optind + 1]);
    log_ulong("max_children", maxchild);
    log_ulong("max_held", maxhold);
    log_ulong("zones", (unsigned long)nzones);
    log_end();
  }
  if (lookups && log_on(LOG_ERROR)) {
    char o[3] = {'-', (char)lookups, 0};
    log_start("front");
    log_str("warning", "no remote host name lookups: TCPREMOTEHOST stays unset as with -H");
    log_str("option", o);
    log_end();
  }
  spares_fill();
  for (;;) {
    struct epoll_event ev[64];
    long long now = now_ms();
    int n = epoll_wait(ep, ev, 64, next_timeout(now)), k;
    if (n == -1 && errno != EINTR) die("epoll_wait", 0);
    for (k = 0; k < n; ++k) {
      uint64_t t = ev[k].data.u64;
      int type = (int)(t >> 60);
      unsigned idx = (unsigned)(t >> 32) & 0xfffffff, gen = (unsigned)t;
      if (type == EV_LISTEN) do_accept();
      else if (type == EV_SPARE) spare_input((int)idx);
      else if (type == EV_SIG) {
        char b[64];
        while (read(sigpipe_[0], b, sizeof b) > 0) {}
        reap();
      } else if (type == EV_ARES) {
        int fd = (int)idx;
        ares_process_fd(ch, ev[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP) ? fd : ARES_SOCKET_BAD,
                        ev[k].events & EPOLLOUT ? fd : ARES_SOCKET_BAD);
      } else if (type == EV_CONN && idx < maxhold && conns[idx].gen == gen &&
                 (conns[idx].phase == PH_CHECK || conns[idx].phase == PH_REFUSE))
        conn_input(&conns[idx]);
    }
    if (got_term) {
      close(lfd);
      if (log_on(LOG_INFO)) summary("exit");
      _exit(0);
    }
    if (got_hup) { got_hup = 0; summary("summary"); }
    if (chok) ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    timers(now_ms());
    run_ready();
    spares_fill();
    listener_update();
  }
}
