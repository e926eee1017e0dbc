/* t_instruct - instruct.c against ipsvd's instruct cdb (formats.md §1): cdbs built at run time
 * with ipsvd-cdb from a directory (mode 0644 instructions, 0744 exec, 0000 deny) and by hand
 * with libowfat's cdb_make; the lookup order (IP, its prefixes, host and parent domains
 * lower-cased, "0"), +NAME=VALUE / +NAME / ignored lines, warnings for C and = lines, D, X,
 * values without a type byte, missing, broken and unreadable files. */
#include <stdint.h>
#include <sys/mman.h>
#include <cdb_make.h>
#include "instruct.h"
#include "check.h"

#define S(x) x, sizeof x - 1

static int nwarn;
static char warnwhy[10][100], warnline[10][100];

static void warn(const char *why, const char *line)
{
  if (nwarn < 10) {
    snprintf(warnwhy[nwarn], sizeof warnwhy[0], "%s", why);
    snprintf(warnline[nwarn], sizeof warnline[0], "%s", line);
  }
  ++nwarn;
}

struct entry {
  const char *name;
  const char *text;
  size_t len;
  int mode;
};

/* ipsvd_cdb - a directory of entries turned into a cdb by ipsvd-cdb; 0 or -1 */
static int ipsvd_cdb(const char *cdb, const struct entry *e)
{
  char dir[300], path[600], cmd[1500];
  int r;
  snprintf(dir, sizeof dir, "%s.d", cdb);
  mkdir(dir, 0755);
  for (; e->name; ++e) {
    snprintf(path, sizeof path, "%s/%s", dir, e->name);
    if (check_write(path, e->text, e->len, e->mode) == -1) return -1;
  }
  snprintf(cmd, sizeof cmd, "ipsvd-cdb '%s' '%s.tmp' '%s' >/dev/null 2>&1", cdb, cdb, dir);
  r = system(cmd);
  return check(r == 0, cdb, "fixture: ipsvd-cdb failed (%d): is the ipsvd package installed?", r)
             ? 0 : -1;
}

struct pair {
  const char *key;
  size_t klen;
  const char *val;
  size_t vlen;
};

/* hand_cdb - a cdb with exactly these records (in order; duplicates allowed) */
static int hand_cdb(const char *fn, const struct pair *p)
{
  static struct cdb_make cm;
  int fd = open(fn, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd == -1 || cdb_make_start(&cm, fd) == -1) return check(0, fn, "fixture: cannot create"), -1;
  for (; p->key; ++p)
    if (cdb_make_add(&cm, (const unsigned char *)p->key, p->klen, (const unsigned char *)p->val,
                     p->vlen) == -1)
      return check(0, fn, "fixture: cdb_make_add failed"), -1;
  if (cdb_make_finish(&cm) == -1) return check(0, fn, "fixture: cdb_make_finish failed"), -1;
  close(fd);
  return 0;
}

static const struct entry main_entries[] = {
  {"192.0.2.7", S("+K=ip\n+RELAYCLIENT=\n# note\n\n+UNSETME\n+\n+=x\n+EQ=a=b\nC10:busy\n"
                  "=gw.example.net:10.1\nZunknown\n+LAST=1\n"), 0644},
  {"192.0.2", S("+K=p3\n"), 0644},
  {"192.0", S("+K=p2\n"), 0644},
  {"192", S("+K=p1\n"), 0644},
  {"19", S("+K=p19\n"), 0644},
  {"mx1.mail.example.net", S("+K=h4\n"), 0644},
  {"mail.example.net", S("+K=h3\n"), 0644},
  {"example.net", S("+K=h2\n"), 0644},
  {"net", S("+K=h1\n"), 0644},
  {"0", S("+K=zero\n"), 0644},
  {"10.2", S(""), 0},
  {"10.3", S("+K=ignored\n"), 0},
  {"192.0.2.9", S("echo busy\nsecond line\n"), 0744},
  {"192.0.2.10", S(""), 0744},
  {"192.0.2.11", S("exec true\n"), 0700},
  {"172.16.0.1", S(""), 0644},
  {"172.16.0.2", S("+K=readonly\n"), 0444},
  {"2001:db8::1", S("+K=v6\n"), 0644},
  {"2001:db8:", S("+K=v6prefix\n"), 0644},
  {0, 0, 0, 0}
};

struct lcase {
  const char *name;
  const char *ip, *host;
  int ret;
  const char *key;   /* 0: no key */
  const char *k;     /* $K afterwards ("-" = unchanged "before") */
  const char *cmd;   /* for EXEC */
};

static const struct lcase lcases[] = {
  {"exact_ip", "192.0.2.7", 0, INSTRUCT_ALLOW, "192.0.2.7", "ip", 0},
  {"prefix3_not_longer_ip", "192.0.2.70", 0, INSTRUCT_ALLOW, "192.0.2", "p3", 0},
  {"prefix2", "192.0.3.1", 0, INSTRUCT_ALLOW, "192.0", "p2", 0},
  {"prefix1", "192.1.1.1", 0, INSTRUCT_ALLOW, "192", "p1", 0},
  {"prefix_whole_octets_19", "19.0.0.1", 0, INSTRUCT_ALLOW, "19", "p19", 0},
  {"prefix_not_partial_octet", "192.5.5.5", 0, INSTRUCT_ALLOW, "192", "p1", 0},
  {"ip_before_host", "192.0.2.8", "mx1.mail.example.net", INSTRUCT_ALLOW, "192.0.2", "p3", 0},
  {"host_exact_lowercased", "10.0.0.1", "MX1.Mail.Example.NET", INSTRUCT_ALLOW,
   "mx1.mail.example.net", "h4", 0},
  {"host_parent", "10.0.0.1", "other.mail.example.net", INSTRUCT_ALLOW, "mail.example.net", "h3", 0},
  {"host_grandparent", "10.0.0.1", "x.example.net", INSTRUCT_ALLOW, "example.net", "h2", 0},
  {"host_tld", "10.0.0.1", "a.b.net", INSTRUCT_ALLOW, "net", "h1", 0},
  {"host_tld_upper", "10.0.0.1", "NET", INSTRUCT_ALLOW, "net", "h1", 0},
  {"host_no_match_zero", "10.0.0.1", "host.org", INSTRUCT_ALLOW, "0", "zero", 0},
  {"no_host_zero", "10.0.0.1", 0, INSTRUCT_ALLOW, "0", "zero", 0},
  {"empty_host_zero", "10.0.0.1", "", INSTRUCT_ALLOW, "0", "zero", 0},
  {"leading_dot_host_ignored", "10.0.0.1", ".example.net", INSTRUCT_ALLOW, "0", "zero", 0},
  {"host_suffix_not_partial_label", "10.0.0.1", "xnet", INSTRUCT_ALLOW, "0", "zero", 0},
  {"exec", "192.0.2.9", "mx1.mail.example.net", INSTRUCT_EXEC, "192.0.2.9", "-",
   "echo busy\nsecond line"},
  {"exec_empty", "192.0.2.10", 0, INSTRUCT_EXEC, "192.0.2.10", "-", ""},
  {"exec_mode_700", "192.0.2.11", 0, INSTRUCT_EXEC, "192.0.2.11", "-", "exec true"},
  {"deny", "10.2.3.4", 0, INSTRUCT_DENY, "10.2", "-", 0},
  {"deny_ignores_content", "10.3.0.1", 0, INSTRUCT_DENY, "10.3", "-", 0},
  {"deny_prefix_not_partial", "10.20.3.4", 0, INSTRUCT_ALLOW, "0", "zero", 0},
  {"empty_instructions", "172.16.0.1", 0, INSTRUCT_ALLOW, "172.16.0.1", "-", 0},
  {"readonly_file_is_instructions", "172.16.0.2", 0, INSTRUCT_ALLOW, "172.16.0.2", "readonly", 0},
  {"ipv6_exact", "2001:db8::1", 0, INSTRUCT_ALLOW, "2001:db8::1", "v6", 0},
  {"ipv6_no_prefixes", "2001:db8::2", 0, INSTRUCT_ALLOW, "0", "zero", 0},
  {0, 0, 0, 0, 0, 0, 0}
};

static void lookup_cases(void)
{
  const struct lcase *c;
  static stralloc cmd;
  if (ipsvd_cdb("main.cdb", main_entries) == -1) return;
  for (c = lcases; c->name; ++c) {
    const char *key = "junk", *k;
    char n[100];
    int r;
    snprintf(n, sizeof n, "instruct %s", c->name);
    setenv("K", "before", 1);
    stralloc_copys(&cmd, "junk");
    nwarn = 0;
    r = instruct_apply("main.cdb", c->ip, c->host, &cmd, &key, warn);
    k = getenv("K");
    if (r != c->ret) check(0, n, "return %d, want %d (key %s)", r, c->ret, key ? key : "none");
    else if (!key || strcmp(key, c->key)) check(0, n, "key %s, want %s", key ? key : "none", c->key);
    else if (!k || strcmp(k, strcmp(c->k, "-") ? c->k : "before"))
      check(0, n, "K=%s, want %s", k ? k : "(unset)", c->k);
    else if (c->cmd && (cmd.len != strlen(c->cmd) + 1 || strcmp(cmd.s, c->cmd)))
      check(0, n, "cmd %s (len %zu), want %s", check_esc(cmd.s, cmd.len), cmd.len,
            check_esc(c->cmd, strlen(c->cmd)));
    else check(1, n, "%s", "");
  }
}

/* the lines of 192.0.2.7 in detail */
static void line_cases(void)
{
  static stralloc cmd;
  const char *key, *x;
  int r;
  setenv("UNSETME", "still here", 1);
  unsetenv("RELAYCLIENT");
  unsetenv("EQ");
  unsetenv("LAST");
  nwarn = 0;
  r = instruct_apply("main.cdb", "192.0.2.7", 0, &cmd, &key, warn);
  check(r == INSTRUCT_ALLOW, "instruct lines_allow", "return %d", r);
  x = getenv("RELAYCLIENT");
  check(x && !*x, "instruct lines_set_empty_value", "RELAYCLIENT=%s", x ? x : "(unset)");
  check(!getenv("UNSETME"), "instruct lines_unset", "UNSETME=%s", getenv("UNSETME"));
  x = getenv("EQ");
  check(x && !strcmp(x, "a=b"), "instruct lines_value_with_equals", "EQ=%s", x ? x : "(unset)");
  x = getenv("LAST");
  check(x && !strcmp(x, "1"), "instruct lines_after_ignored_lines", "LAST=%s", x ? x : "(unset)");
  check(!getenv(""), "instruct lines_empty_name_ignored", "an empty name was set");
  check(nwarn == 3, "instruct lines_warn_count", "%d warnings, want 3 (C, =, Z)", nwarn);
  if (nwarn == 3) {
    check_str("instruct lines_warn_c", warnline[0], "C10:busy");
    check_str("instruct lines_warn_eq", warnline[1], "=gw.example.net:10.1");
    check_str("instruct lines_warn_unknown", warnline[2], "Zunknown");
    check(strstr(warnwhy[0], "concurrency") != 0, "instruct lines_warn_c_why", "why %s", warnwhy[0]);
    check(strstr(warnwhy[1], "DNS") != 0, "instruct lines_warn_eq_why", "why %s", warnwhy[1]);
    check(strstr(warnwhy[2], "unknown") != 0, "instruct lines_warn_unknown_why", "why %s", warnwhy[2]);
  }
  /* the value is used again: applying it twice gives the same result */
  setenv("UNSETME", "x", 1);
  r = instruct_apply("main.cdb", "192.0.2.7", 0, &cmd, &key, warn);
  x = getenv("EQ");
  check(r == INSTRUCT_ALLOW && !getenv("UNSETME") && x && !strcmp(x, "a=b"), "instruct lines_twice",
        "return %d EQ=%s", r, x ? x : "(unset)");
}

#define P(k, v) {k, sizeof k - 1, v, sizeof v - 1}
static const struct pair hand_pairs[] = {
  P("1.1.1.1", "+A=1"),
  P("2.2.2.2", ""),
  P("3.3.3.3", "+T=3\0+U=4I"),
  P("4.4.4.4", "D"),
  P("5.5.5.5", "X"),
  P("6.6.6.6", "I"),
  P("7.7.7.7", "+V=x\0\0\0+W=yI"),
  P("8.8.8.8", "+V=1\0+V=2I"),
  P("9.9.9.9", "#+V=1\0+V2=okI"),
  P("1.2.1.2", "+D=firstI"),
  P("1.2.1.2", "+D=secondI"),
  P("1.3.1.3", "+Z=1\0I"),
  P("1.4.1.4", "+Y=a\nbI"),
  P("1.5.1.5", "DX"),
  P("1.6.1.6", "x"),
  P("1.7.1.7", "+NUL\0I"),
  {0, 0, 0, 0}
};

struct hcase {
  const char *name, *ip;
  int ret;
  const char *var, *val;  /* an environment variable to check afterwards (val 0: unset) */
};

static const struct hcase hcases[] = {
  {"no_type_byte_is_none", "1.1.1.1", INSTRUCT_NONE, "A", 0},
  {"empty_value_is_error", "2.2.2.2", INSTRUCT_ERROR, 0, 0},
  {"nul_separated_lines", "3.3.3.3", INSTRUCT_ALLOW, "U", "4"},
  {"nul_separated_lines_first", "3.3.3.3", INSTRUCT_ALLOW, "T", "3"},
  {"deny_only_d", "4.4.4.4", INSTRUCT_DENY, 0, 0},
  {"exec_only_x", "5.5.5.5", INSTRUCT_EXEC, 0, 0},
  {"allow_only_i", "6.6.6.6", INSTRUCT_ALLOW, 0, 0},
  {"empty_lines_skipped", "7.7.7.7", INSTRUCT_ALLOW, "W", "y"},
  {"last_set_wins", "8.8.8.8", INSTRUCT_ALLOW, "V", "2"},
  {"comment_skipped", "9.9.9.9", INSTRUCT_ALLOW, "V2", "ok"},
  {"duplicate_key_first_wins", "1.2.1.2", INSTRUCT_ALLOW, "D", "first"},
  {"trailing_nul", "1.3.1.3", INSTRUCT_ALLOW, "Z", "1"},
  {"lf_inside_value_kept", "1.4.1.4", INSTRUCT_ALLOW, "Y", "a\nb"},
  {"type_is_last_byte", "1.5.1.5", INSTRUCT_EXEC, 0, 0},
  {"lowercase_type_is_none", "1.6.1.6", INSTRUCT_NONE, 0, 0},
  {"unset_then_nothing", "1.7.1.7", INSTRUCT_ALLOW, "NUL", 0},
  {"no_entry_no_zero", "5.6.7.8", INSTRUCT_NONE, 0, 0},
  {0, 0, 0, 0, 0}
};

static void hand_cases(void)
{
  const struct hcase *c;
  static stralloc cmd;
  if (hand_cdb("hand.cdb", hand_pairs) == -1) return;
  for (c = hcases; c->name; ++c) {
    const char *key = "junk", *x;
    char n[100];
    int r;
    snprintf(n, sizeof n, "instruct %s", c->name);
    setenv("A", "a0", 1);
    setenv("NUL", "n0", 1);
    r = instruct_apply("hand.cdb", c->ip, 0, &cmd, &key, warn);
    x = c->var ? getenv(c->var) : 0;
    if (r != c->ret) check(0, n, "return %d, want %d", r, c->ret);
    else if (c->var && c->val && (!x || strcmp(x, c->val)))
      check(0, n, "%s=%s, want %s", c->var, x ? check_esc(x, strlen(x)) : "(unset)", c->val);
    else if (c->var && !c->val && !strcmp(c->var, "NUL") && x)
      check(0, n, "%s=%s, want unset", c->var, x);
    else if (c->var && !c->val && strcmp(c->var, "NUL") && (!x || strcmp(x, "a0")))
      check(0, n, "%s changed to %s", c->var, x ? x : "(unset)");
    else check(1, n, "%s", "");
  }
  {
    const char *key;
    int r = instruct_apply("hand.cdb", "5.5.5.5", 0, &cmd, &key, warn);
    check(r == INSTRUCT_EXEC && cmd.len == 1 && cmd.s[0] == 0, "instruct exec_empty_command",
          "return %d cmd %s", r, check_esc(cmd.s, cmd.len));
    r = instruct_apply("hand.cdb", "1.5.1.5", 0, &cmd, &key, warn);
    check(r == INSTRUCT_EXEC && !strcmp(cmd.s, "D"), "instruct exec_command_is_payload",
          "return %d cmd %s", r, check_esc(cmd.s, cmd.len));
  }
}

static void file_cases(void)
{
  static stralloc cmd;
  static char big[INSTRUCT_VALUE_MAX + 10];
  const char *key;
  struct pair bp[2];
  int r;
  r = instruct_apply("missing.cdb", "192.0.2.7", 0, &cmd, &key, warn);
  check(r == INSTRUCT_NONE && !key, "instruct missing_file", "return %d", r);
  r = instruct_apply("nodir/x.cdb", "192.0.2.7", 0, &cmd, &key, warn);
  check(r == INSTRUCT_NONE, "instruct missing_directory", "return %d", r);
  mkdir("adir", 0755);
  r = instruct_apply("adir", "192.0.2.7", 0, &cmd, &key, warn);
  check(r == INSTRUCT_ERROR, "instruct directory_is_error", "return %d, want %d", r, INSTRUCT_ERROR);
  r = instruct_apply("", "192.0.2.7", 0, &cmd, &key, warn);
  check(r == INSTRUCT_NONE && !key, "instruct empty_path_off", "return %d", r);
  check_write("empty.cdb", "", 0, 0644);
  r = instruct_apply("empty.cdb", "192.0.2.7", 0, &cmd, &key, warn);
  check(r == INSTRUCT_ERROR, "instruct empty_file_is_error", "return %d, want %d", r, INSTRUCT_ERROR);
  memset(big, 'x', 100);
  check_write("junk.cdb", big, 100, 0644);
  r = instruct_apply("junk.cdb", "192.0.2.7", 0, &cmd, &key, warn);
  check(r == INSTRUCT_ERROR, "instruct junk_file_is_error", "return %d, want %d", r, INSTRUCT_ERROR);
  check_write("notcdb", "+K=1\n", 5, 0644);
  r = instruct_apply("notcdb", "192.0.2.7", 0, &cmd, &key, warn);
  check(r == INSTRUCT_ERROR, "instruct text_file_is_error", "return %d, want %d", r, INSTRUCT_ERROR);
  /* a value over INSTRUCT_VALUE_MAX */
  memset(big, 'x', sizeof big);
  memcpy(big, "+BIG=", 5);
  big[sizeof big - 1] = 'I';
  bp[0].key = "9.8.7.6"; bp[0].klen = 7; bp[0].val = big; bp[0].vlen = sizeof big;
  bp[1].key = 0;
  if (hand_cdb("big.cdb", bp) == 0) {
    unsetenv("BIG");
    r = instruct_apply("big.cdb", "9.8.7.6", 0, &cmd, &key, warn);
    check(r == INSTRUCT_ERROR && !getenv("BIG"), "instruct value_too_big", "return %d", r);
  }
  /* exactly INSTRUCT_VALUE_MAX is fine */
  bp[0].vlen = INSTRUCT_VALUE_MAX;
  big[INSTRUCT_VALUE_MAX - 1] = 'I';
  if (hand_cdb("max.cdb", bp) == 0) {
    const char *x;
    unsetenv("BIG");
    r = instruct_apply("max.cdb", "9.8.7.6", 0, &cmd, &key, warn);
    x = getenv("BIG");
    check(r == INSTRUCT_ALLOW && x && strlen(x) == INSTRUCT_VALUE_MAX - 6, "instruct value_max",
          "return %d len %zu", r, x ? strlen(x) : 0);
  }
}

/* libowfat's cdb_init starts with cdb_free, which munmaps c->map when it is not 0: a struct
 * cdb must be zeroed before its first cdb_init. Here the stack is first filled with the address
 * of a region we reserve (low 32 bits = its size), so a struct cdb left uninitialised on the
 * stack makes instruct_apply unmap our region (valgrind reports the same as "munmap(start)
 * contains uninitialised byte(s)"). */
static void dirty_stack(uint64_t v)
{
  volatile uint64_t a[16384];
  size_t i;
  for (i = 0; i < sizeof a / sizeof a[0]; ++i) a[i] = v;
}

static void uninitialised_cdb_case(void)
{
  static stralloc cmd;
  const char *key;
  unsigned char vec;
  size_t len = 0x10000000;
  uintptr_t at;
  void *p = MAP_FAILED;
  int r;
  for (at = 0x10000000; at <= 0x70000000 && p == MAP_FAILED; at += 0x10000000) {
    p = mmap((void *)at, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
             MAP_FIXED_NOREPLACE, -1, 0);
    if (p != MAP_FAILED && p != (void *)at) { munmap(p, len); p = MAP_FAILED; }
  }
  if (p == MAP_FAILED) {
    check(0, "instruct cdb_struct_zeroed", "fixture: cannot reserve a region below 2 GB");
    return;
  }
  dirty_stack((uint64_t)(uintptr_t)p);
  r = instruct_apply("main.cdb", "192.0.2.7", 0, &cmd, &key, warn);
  check(r == INSTRUCT_ALLOW && mincore(p, 4096, &vec) == 0, "instruct cdb_struct_zeroed",
        "return %d; our region at %p is %s (struct cdb not zeroed before cdb_init)", r, p,
        mincore(p, 4096, &vec) == 0 ? "still mapped" : "gone: instruct_apply unmapped it");
  munmap(p, len);
}

static void path_cases(void)
{
  unsetenv("INSTRUCTCDB");
  check_str("instruct_path default", instruct_path(), "control/instruct.cdb");
  setenv("INSTRUCTCDB", "/etc/x.cdb", 1);
  check_str("instruct_path env", instruct_path(), "/etc/x.cdb");
  setenv("INSTRUCTCDB", "", 1);
  check_str("instruct_path empty_is_off", instruct_path(), "");
  unsetenv("INSTRUCTCDB");
}

int main(void)
{
  check_tmpdir("instruct");
  lookup_cases();
  line_cases();
  hand_cases();
  file_cases();
  path_cases();
  uninitialised_cdb_case();
  return check_done();
}
