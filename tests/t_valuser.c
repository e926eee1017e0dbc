/* t_valuser - valuser.c against fixture qmail and vpopmail trees built here: every row of the
 * lookup order (virtualdomains key forms and last-line-wins, users/cdb exact before wildcard,
 * longest wildcard first, wildchars, .qmail-EXT before -default and longer -default first,
 * the alias user, vpopmail's action, valias files, vpasswd.cdb/vpasswd, BOUNCE_MAIL, QMAIL_EXT,
 * ezmlm), the temporary-error rows, the mxguard-users cdb, the switches and the harvest
 * defence. Each ordering case is built so that the other order gives the other answer. */
#include <cdb_make.h>
#include <pwd.h>
#include <sys/stat.h>
#include "check.h"
#include "../log.h"
#include "../valuser.h"

static char home[300];

static void mkdirs(const char *path)
{
  char p[600];
  size_t i;
  snprintf(p, sizeof p, "%s", path);
  for (i = 1; p[i]; ++i)
    if (p[i] == '/') { p[i] = 0; mkdir(p, 0755); p[i] = '/'; }
  mkdir(p, 0755);
}

/* put - a file under the fixture, parents made */
static void put(const char *rel, const char *text, int mode)
{
  char p[600], *slash;
  snprintf(p, sizeof p, "%s", rel);
  if ((slash = strrchr(p, '/'))) { *slash = 0; mkdirs(p); }
  check_write(rel, text, strlen(text), mode);
}

/* newu - users/cdb from users/assign lines, encoded as qmail-newu does */
static void newu(const char *path, const char *const *lines, int wildchars)
{
  struct cdb_make c;
  char wild[64] = "", tmp[300];
  size_t nw = 0;
  int fd;
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd == -1 || cdb_make_start(&c, fd) == -1) { check(0, "newu", "cannot write %s", tmp); return; }
  for (; *lines; ++lines) {
    char key[300], val[600];
    const char *l = *lines, *colon = strchr(l + 1, ':');
    size_t kl = 0, vl = 0, i, nf = 0;
    key[kl++] = '!';
    for (i = 1; l + i < colon; ++i) key[kl++] = (char)((l[i] >= 'A' && l[i] <= 'Z') ? l[i] + 32 : l[i]);
    if (*l == '+') {
      if (kl > 1 && !memchr(wild, key[kl - 1], nw)) wild[nw++] = key[kl - 1];
    } else
      key[kl++] = 0;
    for (i = 1; colon[i] && nf < 6; ++i) {
      if (colon[i] == ':') { if (++nf < 6) val[vl++] = 0; }
      else val[vl++] = colon[i];
    }
    cdb_make_add(&c, (unsigned char *)key, kl, (unsigned char *)val, vl);
  }
  if (wildchars) cdb_make_add(&c, (const unsigned char *)"", 0, (unsigned char *)wild, nw);
  cdb_make_finish(&c);
  close(fd);
  rename(tmp, path);
}

/* cdbkv - a cdb of "key value" pairs (value may be "") */
static void cdbkv(const char *path, const char *const *kv)
{
  struct cdb_make c;
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd == -1 || cdb_make_start(&c, fd) == -1) { check(0, "cdbkv", "cannot write %s", path); return; }
  for (; kv[0]; kv += 2)
    cdb_make_add(&c, (const unsigned char *)kv[0], strlen(kv[0]), (const unsigned char *)kv[1],
                 strlen(kv[1]));
  cdb_make_finish(&c);
  close(fd);
}

static const char *rname(int r)
{
  return r == VU_YES ? "yes" : r == VU_NO ? "no" : r == VU_TEMP ? "temp" : r == VU_SKIP ? "skip" : "?";
}

/* expect - one address: the answer and (when given) the backend */
static void expect(const char *name, const char *addr, int want, const char *backend)
{
  struct vu_result res;
  valuser_lookup(addr, strlen(addr), &res);
  check(res.r == want && (!backend || !strcmp(res.backend, backend)), name,
        "%s: got %s/%s/%s (%s), want %s/%s", addr, rname(res.r), res.backend, res.why,
        res.detail ? res.detail : "", rname(want), backend ? backend : "*");
}

static char hbuf[24][400];
static const char *H(int i, const char *fmt)  /* fmt with %s = the fixture home */
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
  snprintf(hbuf[i], sizeof hbuf[i], fmt, home);
#pragma GCC diagnostic pop
  return hbuf[i];
}

static void fixture(void)
{
  const char *users[] = {
    H(0, "=joe:joe:1000:1000:%s/h/joe:::"),
    H(1, "=joe-x:x:1001:1001:%s/h/x:-:ext:"),
    H(2, "=nofile:x:1001:1001:%s/h/x:-:none:"),
    H(3, "+pre-:p:1002:1002:%s/h/p:-:p-:"),
    H(4, "+pre-long-:pl:1003:1003:%s/h/pl:-::"),
    H(5, "=pre-exact:e:1004:1004:%s/h/e:::"),
    H(6, "+z:zz:1005:1005:%s/h/z:-::"),
    H(7, "+virt-:virt:1006:1006:%s/h/virt:-::"),
    H(8, "+v1-:v1:1007:1007:%s/h/v1:-::"),
    H(9, "+deep-:deep:1008:1008:%s/h/deep:-::"),
    H(10, "+sub-:sub:1009:1009:%s/h/sub:-::"),
    H(11, "+spec-:spec:1010:1010:%s/h/spec:-::"),
    H(12, "+specdom-:specdom:1011:1011:%s/h/specdom:-::"),
    H(13, "+:alias:7790:2108:%s/h/alias:-::"),
    0};
  const char *vusers[] = {
    H(14, "+vpop.example-:vpop.example:89:89:%s/vp/vpop.example:-::"),
    H(15, "+alias.example-:vpop.example:89:89:%s/vp/vpop.example:-::"),
    H(16, "+vtext.example-:vtext.example:89:89:%s/vp/vtext.example:-::"),
    H(17, "+vcatch.example-:vcatch.example:89:89:%s/vp/vcatch.example:-::"),
    H(18, "+vdel.example-:vdel.example:89:89:%s/vp/vdel.example:-::"),
    H(19, "+vnodb.example-:vnodb.example:89:89:%s/vp/vnodb.example:-::"),
    H(20, "+vmixed.example-:vmixed.example:89:89:%s/vp/vmixed.example:-::"),
    0};
  const char *all[40];
  const char *vp[] = {"alice", "x:1:0:Alice:/d/alice:NOQUOTA", "bounced", "x:1:16:B:/d/b:NOQUOTA",
                      "john.doe", "x:1:0:J:/d/j:NOQUOTA", 0};
  const char *bounce = "| /home/vpopmail/bin/vdelivermail '' bounce-no-mailbox\n";
  int i, n = 0;
  put("control/me", "mx.example\n", 0644);
  put("control/locals", "local.example\nmx.example\n", 0644);
  put("control/virtualdomains",
      "virt.example:v1\nvirt.example:virt\n.sub.example:sub\n.b.sub.example:deep\n"
      "joe@special.example:spec\nspecial.example:specdom\nremote.example:\n"
      "vpop.example:vpop.example\nalias.example:alias.example\nvtext.example:vtext.example\n"
      "vcatch.example:vcatch.example\nvdel.example:vdel.example\nvnodb.example:vnodb.example\n"
      "vmixed.example:vmixed.example\n",
      0644);
  put("control/percenthack", "local.example\n", 0644);
  for (i = 0; users[i]; ++i) all[n++] = users[i];
  for (i = 0; vusers[i]; ++i) all[n++] = vusers[i];
  all[n] = 0;
  /* the catch-all "+" line must come last only in spirit: cdb finds by key, order is irrelevant */
  mkdirs("users");
  newu("users/cdb", all, 1);
  mkdirs("h/joe");
  put("h/x/.qmail-ext", "./Maildir/\n", 0644);
  put("h/p/.qmail-p-a", "&a@elsewhere.example\n", 0644);
  put("h/p/.qmail-p-b-default", "&b@elsewhere.example\n", 0644);
  put("h/pl/.qmail-default", "./Maildir/\n", 0644);
  mkdirs("h/e");
  put("h/z/.qmail-ed", "./Maildir/\n", 0644);
  put("h/virt/.qmail-bob", "./Maildir/\n", 0644);
  mkdirs("h/v1");
  put("h/deep/.qmail-default", "./Maildir/\n", 0644);
  put("h/sub/.qmail-y", "./Maildir/\n", 0644);
  put("h/spec/.qmail-default", "./Maildir/\n", 0644);
  mkdirs("h/specdom");
  put("h/alias/.qmail-postmaster", "&root@elsewhere.example\n", 0644);
  put("h/alias/.qmail-john:doe", "&jd@elsewhere.example\n", 0644);
  put("h/alias/.qmail-ww", "&ww@elsewhere.example\n", 0666);       /* writable: defer */
  put("h/alias/.qmail-dir/x", "", 0644);                           /* a directory: absent */
  put("h/alias/.qmail-team-a-default", "&t@elsewhere.example\n", 0644);
  put("h/alias/.qmail-team-default", "| bouncesaying gone\n", 0644);
  /* vpopmail */
  put("vp/vpop.example/.qmail-default", bounce, 0600);
  cdbkv("vp/vpop.example/vpasswd.cdb", vp);
  put("vp/vpop.example/.qmail-info", "&info@elsewhere.example\n", 0600);
  put("vp/vpop.example/.qmail-list", "|ezmlm-send list\n", 0600);
  put("vp/vpop.example/.qmail-list-default", "|ezmlm-manage list\n", 0600);
  put("vp/vpop.example/lst2/editor", "|ezmlm-store\n", 0600);
  put("vp/vpop.example/.qmail-sales-default", "&s@elsewhere.example\n", 0600);
  put("vp/vtext.example/.qmail-default", bounce, 0600);
  put("vp/vtext.example/vpasswd", "carol:x:1:0:Carol:/d/carol:NOQUOTA\n", 0600);
  put("vp/vcatch.example/.qmail-default", "| /home/vpopmail/bin/vdelivermail '' catchall@vpop.example\n", 0600);
  cdbkv("vp/vcatch.example/vpasswd.cdb", vp);
  put("vp/vdel.example/.qmail-default", "| /home/vpopmail/bin/vdelivermail '' delete\n", 0600);
  cdbkv("vp/vdel.example/vpasswd.cdb", vp);
  put("vp/vnodb.example/.qmail-default", bounce, 0600);
  put("vp/vmixed.example/.qmail-default",
      "# copy everything\n&archive@elsewhere.example\n| /home/vpopmail/bin/vdelivermail '' bounce-no-mailbox\n", 0600);
  cdbkv("vp/vmixed.example/vpasswd.cdb", vp);
}

static void qmail_rows(void)
{
  expect("locals: users/cdb exact, dash empty", "joe@local.example", VU_YES, "qmail");
  expect("locals: me when no @ (envnoathost)", "joe", VU_YES, "qmail");
  expect("locals: case of domain", "joe@LOCAL.Example", VU_YES, "qmail");
  expect("users/cdb exact: ext from the entry", "joe-x@local.example", VU_YES, "qmail");
  expect("users/cdb exact: no .qmail file", "nofile@local.example", VU_NO, "qmail");
  expect("wildcard: rest appended to pre", "pre-a@local.example", VU_YES, "qmail");
  expect("wildcard: -default", "pre-b-anything@local.example", VU_YES, "qmail");
  expect("wildcard: no file", "pre-c@local.example", VU_NO, "qmail");
  expect("order: longest wildcard first", "pre-long-x@local.example", VU_YES, "qmail");
  expect("order: exact before wildcard", "pre-exact@local.example", VU_YES, "qmail");
  expect("wildchars: z prefix", "zed@local.example", VU_YES, "qmail");
  expect("virtualdomains: last line wins", "bob@virt.example", VU_YES, "qmail");
  expect("virtualdomains: unknown in domain", "nobody@virt.example", VU_NO, "qmail");
  expect("virtualdomains: longest .suffix first", "a@a.b.sub.example", VU_YES, "qmail");
  expect("virtualdomains: .suffix", "y@q.sub.example", VU_YES, "qmail");
  expect("virtualdomains: .suffix, no file", "other@q.sub.example", VU_NO, "qmail");
  expect("order: user@domain before domain", "joe@special.example", VU_YES, "qmail");
  expect("virtualdomains: domain entry", "other@special.example", VU_NO, "qmail");
  expect("virtualdomains: empty value is remote", "x@remote.example", VU_SKIP, 0);
  expect("remote domain not checked", "x@elsewhere.example", VU_SKIP, 0);
  expect("percenthack: not checked", "a%b.example@local.example", VU_SKIP, 0);
  expect("alias user: ~alias/.qmail-postmaster", "postmaster@local.example", VU_YES, "qmail");
  expect("alias user: case folded", "PostMaster@local.example", VU_YES, "qmail");
  expect("alias user: dots as colons", "john.doe@local.example", VU_YES, "qmail");
  expect("alias user: nothing", "nosuch@local.example", VU_NO, "qmail");
  expect("order: .qmail-team-a-default before .qmail-team-default", "team-a-b@local.example", VU_YES, "qmail");
  expect("a program in a -default file: no opinion", "team-q@local.example", VU_SKIP, "qmail");
  expect("writable .qmail defers", "ww@local.example", VU_TEMP, "qmail");
  expect("directory .qmail-dir is absent", "dir@local.example", VU_NO, "qmail");
  expect("slash in local part opens a path, as qmail-local does", "dir/x@local.example", VU_YES, "qmail");
  expect("slash in local part, nothing there", "dir/y@local.example", VU_NO, "qmail");
}

static void vpopmail_rows(void)
{
  expect("vpopmail: vpasswd.cdb user", "alice@vpop.example", VU_YES, "vpopmail");
  expect("vpopmail: upper case", "ALICE@vpop.example", VU_YES, "vpopmail");
  expect("vpopmail: alias domain", "alice@alias.example", VU_YES, "vpopmail");
  expect("vpopmail: unknown user", "bob@vpop.example", VU_NO, "vpopmail");
  expect("vpopmail: BOUNCE_MAIL flag", "bounced@vpop.example", VU_NO, "vpopmail");
  expect("vpopmail: dotted user", "john.doe@vpop.example", VU_YES, "vpopmail");
  expect("vpopmail: .qmail-info forward", "info@vpop.example", VU_YES, "qmail");
  expect("vpopmail: ezmlm list", "list@vpop.example", VU_YES, "qmail");
  expect("order: .qmail-list-default before vdelivermail", "list-subscribe@vpop.example", VU_SKIP, "qmail");
  expect("vpopmail: .qmail-sales-default", "sales-x@vpop.example", VU_YES, "qmail");
  expect("vpopmail: ezmlm directory", "lst2-help@vpop.example", VU_YES, "vpopmail");
  expect("vpopmail: QMAIL_EXT user-ext", "alice-news@vpop.example", VU_YES, "vpopmail");
  expect("vpopmail: unknown user-ext", "bob-news@vpop.example", VU_NO, "vpopmail");
  expect("vpopmail: vpasswd text", "carol@vtext.example", VU_YES, "vpopmail");
  expect("vpopmail: vpasswd text, unknown", "dave@vtext.example", VU_NO, "vpopmail");
  expect("vpopmail: catch-all domain", "anyone@vcatch.example", VU_YES, "vpopmail");
  expect("vpopmail: delete action, unknown", "anyone@vdel.example", VU_NO, "vpopmail");
  expect("vpopmail: delete action, known", "alice@vdel.example", VU_YES, "vpopmail");
  expect("vpopmail: no user database: unchecked", "anyone@vnodb.example", VU_SKIP, 0);
  expect("vpopmail: .qmail-default with another program: no opinion", "anyone@vmixed.example", VU_SKIP, "qmail");
}

static void temp_rows(void)
{
  const char *nowild[] = {H(0, "=joe:joe:1000:1000:%s/h/joe:::"), 0};
  const char *cdb[] = {"Dlocal.example", "1", "Dcatch.example", "*", "Ajoe@local.example", "",
                       "Pteam-@local.example", "", 0};
  chmod("h/x", 0777);
  valuser_reset();
  expect("world-writable home defers", "joe-x@local.example", VU_TEMP, "qmail");
  chmod("h/x", 0755);
  chmod("h/x", 01755);
  valuser_reset();
  expect("sticky home defers", "joe-x@local.example", VU_TEMP, "qmail");
  chmod("h/x", 0755);
  rename("users/cdb", "users/cdb.good");
  newu("users/cdb", nowild, 0);
  valuser_reset();
  expect("users/cdb without wildchars record defers", "joe@local.example", VU_TEMP, "qmail");
  check_writes("users/cdb", "garbage");
  valuser_reset();
  expect("users/cdb truncated defers", "joe@local.example", VU_TEMP, "qmail");
  unlink("users/cdb");
  valuser_reset();
  if (!getpwnam("alias") && !getpwnam("nosuchuserxyz"))
    expect("no users/cdb, no passwd user, no alias user defers", "nosuchuserxyz@local.example",
           VU_TEMP, "qmail");
  rename("users/cdb.good", "users/cdb");
  rename("control/locals", "control/locals.x");
  mkdir("control/locals", 0755);  /* a directory: read error */
  valuser_reset();
  expect("unreadable control/locals defers", "joe@local.example", VU_TEMP, "control");
  rmdir("control/locals");
  rename("control/locals.x", "control/locals");
  /* read at first need (issue 14): a broken file defers only the recipients that need it */
  rename("control/percenthack", "control/percenthack.x");
  mkdir("control/percenthack", 0755);
  valuser_reset();
  expect("lazy: remote domain without percenthack", "x@elsewhere.example", VU_SKIP, 0);
  expect("lazy: local user without percenthack", "joe@local.example", VU_YES, "qmail");
  expect("lazy: unreadable percenthack defers a '%' address", "a%b.example@local.example",
         VU_TEMP, "control");
  rmdir("control/percenthack");
  rename("control/percenthack.x", "control/percenthack");
  mkdir("control/vpopmail.mysql", 0755);
  valuser_reset();
  expect("lazy: remote domain without vpopmail.mysql", "x@elsewhere.example", VU_SKIP, 0);
  expect("lazy: qmail user without vpopmail.mysql", "joe@local.example", VU_YES, "qmail");
  expect("lazy: unreadable vpopmail.mysql defers a vpopmail domain", "alice@vpop.example",
         VU_TEMP, "control");
  rmdir("control/vpopmail.mysql");
  valuser_reset();
  expect("lazy: vpopmail.mysql absent again", "alice@vpop.example", VU_YES, "vpopmail");
  /* the mxguard-users cdb */
  cdbkv("control/mxguard-users.cdb", cdb);
  valuser_reset();
  expect("cdb: listed", "Joe@local.example", VU_YES, "cdb");
  expect("cdb: unlisted", "bob@local.example", VU_NO, "cdb");
  expect("cdb: prefix", "team-x-y@local.example", VU_YES, "cdb");
  expect("cdb: prefix needs the dash", "teamx@local.example", VU_NO, "cdb");
  expect("cdb: catch-all domain", "x@catch.example", VU_YES, "cdb");
  expect("cdb: domain not listed", "x@vpop.example", VU_SKIP, 0);
  check_writes("control/mxguard-users.cdb", "short");
  valuser_reset();
  expect("cdb: broken file defers", "x@local.example", VU_TEMP, "cdb");
  unlink("control/mxguard-users.cdb");
  valuser_reset();
}

static struct decision rcpt(struct session *s, const char *addr)
{
  s->rcpt.len = 0;
  stralloc_copys(&s->rcpt, addr);
  stralloc_0(&s->rcpt);
  --s->rcpt.len;
  return valuser_check(s);
}

static void switch_rows(void)
{
  struct session s;
  struct decision d;
  int i;
  memset(&s, 0, sizeof s);
  valuser_reset();
  d = rcpt(&s, "bob@vpop.example");
  check(d.code == 550 && !strcmp(d.esc, "5.1.1") && !strcmp(d.reason, "nouser:vpopmail"),
        "check: unknown is 550 5.1.1", "code %d reason %s", d.code, d.reason ? d.reason : "");
  d = rcpt(&s, "alice@vpop.example");
  check_long("check: known is no opinion", d.code, 0);
  d = rcpt(&s, "ww@local.example");
  check(d.code == 451 && !strcmp(d.esc, "4.3.0"), "check: trouble is 451 4.3.0", "code %d", d.code);
  d = rcpt(&s, "x@elsewhere.example");
  check_long("check: remote is no opinion", d.code, 0);
  s.relayclient = "";
  valuser_reset();
  d = rcpt(&s, "bob@vpop.example");
  check_long("check: RELAYCLIENT skips", d.code, 0);
  setenv("RCPTCHECKRELAY", "", 1);
  valuser_reset();
  d = rcpt(&s, "bob@vpop.example");
  check_long("check: RCPTCHECKRELAY checks relay clients", d.code, 550);
  unsetenv("RCPTCHECKRELAY");
  s.relayclient = 0;
  setenv("RCPTCHECK", "0", 1);
  valuser_reset();
  d = rcpt(&s, "bob@vpop.example");
  check_long("check: RCPTCHECK=0 off", d.code, 0);
  setenv("CHKUSER_START", "ALWAYS", 1);
  setenv("RCPTCHECK", "", 1);
  valuser_reset();
  d = rcpt(&s, "bob@vpop.example");
  check_long("check: RCPTCHECK set (empty) on, before CHKUSER_START", d.code, 550);
  unsetenv("RCPTCHECK");
  setenv("CHKUSER_START", "NONE", 1);
  valuser_reset();
  d = rcpt(&s, "bob@vpop.example");
  check_long("check: CHKUSER_START=NONE off", d.code, 0);
  setenv("CHKUSER_START", "DOMAIN", 1);
  valuser_reset();
  d = rcpt(&s, "anyone@vdel.example");
  check_long("check: CHKUSER_START=DOMAIN accepts a delete domain", d.code, 0);
  d = rcpt(&s, "bob@vpop.example");
  check_long("check: CHKUSER_START=DOMAIN checks a bouncing domain", d.code, 550);
  unsetenv("CHKUSER_START");
  /* harvest defence */
  setenv("BADRCPTSOFT", "2", 1);
  setenv("BADRCPTDELAY", "5ms", 1);
  setenv("BADRCPTLIMIT", "4", 1);
  valuser_reset();
  for (i = 1; i <= 4; ++i) {
    char name[80];
    d = rcpt(&s, "bob@vpop.example");
    snprintf(name, sizeof name, "harvest: unknown %d is 550, delay %s", i, i > 2 ? "5" : "0");
    check(d.code == 550 && d.delay_ms == (i > 2 ? 5u : 0u), name, "code %d delay %u", d.code, d.delay_ms);
    if (i == 1) check_long("harvest: no wait before the soft limit", valuser_delay_ms(), 0);
  }
  check_long("harvest: known recipient waits too", valuser_delay_ms(), 5);
  d = rcpt(&s, "alice@vpop.example");
  check(d.code == 421 && d.drop && !strcmp(d.reason, "harvest"), "harvest: 421 and drop after the limit",
        "code %d drop %d", d.code, d.drop);
  setenv("BADRCPTDELAY", "1", 1);
  valuser_reset();
  for (i = 0; i < 3; ++i) d = rcpt(&s, "bob@vpop.example");
  check_long("harvest: BADRCPTDELAY in seconds", d.delay_ms, 1000);
  unsetenv("BADRCPTSOFT");
  unsetenv("BADRCPTDELAY");
  unsetenv("BADRCPTLIMIT");
  setenv("CHKUSER_WRONGRCPTLIMIT", "1", 1);
  valuser_reset();
  d = rcpt(&s, "bob@vpop.example");
  d = rcpt(&s, "alice@vpop.example");
  check_long("harvest: CHKUSER_WRONGRCPTLIMIT", d.code, 421);
  unsetenv("CHKUSER_WRONGRCPTLIMIT");
  valuser_reset();
}

int main(void)
{
  snprintf(home, sizeof home, "%s", check_tmpdir("valuser"));
  umask(022);
  setenv("LOGLEVEL", "0", 1);
  log_init();
  unsetenv("RCPTCHECK");
  unsetenv("CHKUSER_START");
  fixture();
  qmail_rows();
  vpopmail_rows();
  temp_rows();
  switch_rows();
  return check_done();
}
