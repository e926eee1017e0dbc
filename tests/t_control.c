/* t_control - control.c against qmail's control readers (compat §2.1): readline (first line,
 * trailing space/TAB stripped, CR and leading blanks kept), readint (leading digits), readfile
 * (comments and empty lines dropped, CR kept), the 1/0/-1 results (missing file, directory),
 * cmap (case-insensitive, exact length, NUL splits a line), control_home and scanulong. */
#include "control.h"
#include "check.h"

struct lcase {
  const char *name;
  const char *content;  /* 0: no file */
  size_t len;
  int ret;
  const char *want;
  size_t wantlen;
};

#define S(x) x, sizeof x - 1

static const struct lcase lcases[] = {
  {"plain", S("mx.example.test\n"), 1, S("mx.example.test")},
  {"no_newline", S("mx.example.test"), 1, S("mx.example.test")},
  {"first_line_only", S("one\ntwo\nthree\n"), 1, S("one")},
  {"trailing_space_tab", S("a b \t \t\n"), 1, S("a b")},
  {"trailing_blank_lines_of_file", S("x\n\n\n"), 1, S("x")},
  {"cr_kept", S("mx.example.test\r\n"), 1, S("mx.example.test\r")},
  {"cr_then_space", S("x\r \n"), 1, S("x\r")},
  {"space_then_cr", S("x \r\n"), 1, S("x \r")},
  {"leading_blanks_kept", S("  \tx\n"), 1, S("  \tx")},
  {"inner_blanks_kept", S("greeting  text\tx\n"), 1, S("greeting  text\tx")},
  {"empty_file", S(""), 1, S("")},
  {"only_newline", S("\n"), 1, S("")},
  {"only_blanks", S(" \t \n"), 1, S("")},
  {"empty_first_line", S("\nsecond\n"), 1, S("")},
  {"nul_kept", S("a\0b\n"), 1, S("a\0b")},
  {"8bit_kept", S("\xe9\xff\n"), 1, S("\xe9\xff")},
  {"missing", 0, 0, 0, S("")},
  {0, 0, 0, 0, 0, 0}
};

static void readline_cases(void)
{
  const struct lcase *c;
  for (c = lcases; c->name; ++c) {
    static stralloc sa;
    char n[100];
    int r;
    snprintf(n, sizeof n, "control_readline %s", c->name);
    unlink("f");
    if (c->content && check_write("f", c->content, c->len, 0644) == -1) continue;
    stralloc_copys(&sa, "old");
    r = control_readline(&sa, "f");
    if (r != c->ret) check(0, n, "return %d, want %d", r, c->ret);
    else if (r == 1) check_bytes(n, sa.s, sa.len, c->want, c->wantlen);
    else check(1, n, "%s", "");
  }
  {
    static stralloc sa;
    int r;
    mkdir("d", 0755);
    r = control_readline(&sa, "d");
    check(r == -1, "control_readline directory", "return %d, want -1", r);
    r = control_readline(&sa, "nodir/f");
    check(r == 0, "control_readline missing_parent", "return %d, want 0", r);
    check_write("f", S("l\n"), 0644);
    r = control_readline(&sa, "f/x");
    check(r == -1, "control_readline not_a_directory", "return %d, want -1 (ENOTDIR)", r);
  }
  {
    /* a long file: only the first line, whatever the buffer size */
    static char big[300000];
    static stralloc sa;
    int r;
    memset(big, 'x', sizeof big);
    big[100000] = '\n';
    check_write("f", big, sizeof big, 0644);
    r = control_readline(&sa, "f");
    check(r == 1 && sa.len == 100000, "control_readline long_line", "return %d len %zu", r, sa.len);
  }
}

struct icase {
  const char *name;
  const char *content;  /* 0: no file */
  int ret;
  int want;             /* value after the call (start value 4321) */
};

static const struct icase icases[] = {
  {"plain", "100\n", 1, 100},
  {"no_newline", "100", 1, 100},
  {"trailing_junk", "100abc\n", 1, 100},
  {"trailing_space", "100 \n", 1, 100},
  {"cr", "100\r\n", 1, 100},
  {"zero", "0\n", 1, 0},
  {"leading_zeros", "007\n", 1, 7},
  {"second_line_ignored", "5\n6\n", 1, 5},
  {"letters_default_kept", "abc\n", 0, 4321},
  {"leading_space_default_kept", " 100\n", 0, 4321},
  {"minus_default_kept", "-5\n", 0, 4321},
  {"plus_default_kept", "+5\n", 0, 4321},
  {"empty_file_default_kept", "", 0, 4321},
  {"empty_first_line_default_kept", "\n100\n", 0, 4321},
  {"missing_default_kept", 0, 0, 4321},
  {"large", "2000000000\n", 1, 2000000000},
  {0, 0, 0, 0}
};

static void readint_cases(void)
{
  const struct icase *c;
  int i, r;
  for (c = icases; c->name; ++c) {
    char n[100];
    snprintf(n, sizeof n, "control_readint %s", c->name);
    unlink("f");
    if (c->content && check_writes("f", c->content) == -1) continue;
    i = 4321;
    r = control_readint(&i, "f");
    check(r == c->ret && i == c->want, n, "return %d value %d, want %d value %d", r, i, c->ret,
          c->want);
  }
  i = 4321;
  r = control_readint(&i, "d");
  check(r == -1 && i == 4321, "control_readint directory", "return %d value %d", r, i);
}

struct fcase {
  const char *name;
  const char *content;
  size_t len;
  const char *want;  /* entries, each NUL-terminated */
  size_t wantlen;
};

static const struct fcase fcases[] = {
  {"lines", S("a\nb\nc\n"), S("a\0b\0c\0")},
  {"last_without_newline", S("a\nb"), S("a\0b\0")},
  {"comments_dropped", S("#c\na\n#\nb\n"), S("a\0b\0")},
  {"hash_not_first_kept", S("a#b\n #c\n"), S("a#b\0 #c\0")},
  {"empty_lines_dropped", S("\n\na\n\n\nb\n\n"), S("a\0b\0")},
  {"blank_lines_dropped", S("  \n\t\na\n \t \n"), S("a\0")},
  {"trailing_blanks_stripped", S("a \t\nb  \n"), S("a\0b\0")},
  {"leading_blanks_kept", S("  a\n\tb\n"), S("  a\0\tb\0")},
  {"cr_kept", S("a\r\nb\r\n"), S("a\r\0b\r\0")},
  {"cr_alone_kept", S("\r\n"), S("\r\0")},
  {"nul_first_dropped", S("\0a\nb\n"), S("b\0")},
  {"nul_inside_kept", S("a\0b\n"), S("a\0b\0")},
  {"empty_file", S(""), S("")},
  {"only_comments", S("# x\n#y"), S("")},
  {"8bit", S("\xe9x\n"), S("\xe9x\0")},
  {0, 0, 0, 0, 0}
};

static void readfile_cases(void)
{
  const struct fcase *c;
  static stralloc sa;
  int r;
  for (c = fcases; c->name; ++c) {
    char n[100];
    snprintf(n, sizeof n, "control_readfile %s", c->name);
    if (check_write("f", c->content, c->len, 0644) == -1) continue;
    stralloc_copys(&sa, "old");
    r = control_readfile(&sa, "f");
    if (r != 1) check(0, n, "return %d, want 1", r);
    else check_bytes(n, sa.s, sa.len, c->want, c->wantlen);
  }
  unlink("f");
  stralloc_copys(&sa, "old");
  r = control_readfile(&sa, "f");
  check(r == 0 && sa.len == 0, "control_readfile missing", "return %d len %zu", r, sa.len);
  r = control_readfile(&sa, "d");
  check(r == -1, "control_readfile directory", "return %d, want -1", r);
}

static void cmap_cases(void)
{
  static struct cmap m, empty, big, missing;
  static char buf[100000];
  size_t n = 0;
  int i, r, ok;
  check_write("map", S("Example.TEST\n.sub.example.test\n# comment\nx\r\n  lead\nab\0cd\n\n"), 0644);
  r = cmap_load(&m, "map");
  check(r == 1, "cmap_load file", "return %d", r);
  check(cmap_has(&m, S("example.test")) == 1, "cmap_has exact_lowercase", "not found");
  check(cmap_has(&m, S("EXAMPLE.test")) == 1, "cmap_has case_insensitive", "not found");
  check(cmap_has(&m, S("Example.TEST")) == 1, "cmap_has as_written", "not found");
  check(cmap_has(&m, S(".SUB.example.test")) == 1, "cmap_has dot_entry", "not found");
  check(cmap_has(&m, S("sub.example.test")) == 0, "cmap_has no_suffix_logic", "found");
  check(cmap_has(&m, S("example.tes")) == 0, "cmap_has shorter", "found");
  check(cmap_has(&m, S("example.test.")) == 0, "cmap_has longer", "found");
  check(cmap_has(&m, S("example.testx")) == 0, "cmap_has longer_letter", "found");
  check(cmap_has(&m, "example.test.", 12) == 1, "cmap_has uses_len_not_nul", "not found");
  check(cmap_has(&m, S("x")) == 0, "cmap_has cr_entry_not_plain", "found x without CR");
  check(cmap_has(&m, S("x\r")) == 1, "cmap_has cr_entry", "not found");
  check(cmap_has(&m, S("lead")) == 0, "cmap_has leading_blank_entry_not_trimmed", "found");
  check(cmap_has(&m, S("  lead")) == 1, "cmap_has leading_blank_entry", "not found");
  check(cmap_has(&m, S("ab")) == 1, "cmap_has nul_splits_first", "not found");
  check(cmap_has(&m, S("cd")) == 1, "cmap_has nul_splits_second", "not found");
  check(cmap_has(&m, S("ab\0cd")) == 0, "cmap_has nul_whole_not", "found");
  check(cmap_has(&m, S("# comment")) == 0, "cmap_has comment_not_entry", "found");
  check(cmap_has(&m, S("")) == 0, "cmap_has empty_key", "found");
  check(cmap_has(&m, S("[")) == 0, "cmap_has absent", "found");
  /* '@' vs '`' and '[' vs '{': only A-Z fold */
  check_write("map2", S("a@b\nx[y\n\xc9t\xc9\n"), 0644);
  cmap_load(&m, "map2");
  check(cmap_has(&m, S("A@B")) == 1, "cmap_has reload", "not found");
  check(cmap_has(&m, S("a`b")) == 0, "cmap_has at_is_not_backquote", "found");
  check(cmap_has(&m, S("X{Y")) == 0, "cmap_has bracket_is_not_brace", "found");
  check(cmap_has(&m, S("example.test")) == 0, "cmap_has reload_forgets", "old entry found");
  check(cmap_has(&m, S("\xe9t\xe9")) == 0, "cmap_has 8bit_not_folded", "found");
  check(cmap_has(&m, S("\xc9T\xc9")) == 1, "cmap_has 8bit_exact", "not found");

  check_write("emptymap", S("# nothing\n\n"), 0644);
  r = cmap_load(&empty, "emptymap");
  check(r == 1 && cmap_has(&empty, S("x")) == 0 && cmap_has(&empty, S("")) == 0,
        "cmap_has empty_map", "return %d", r);
  r = cmap_load(&missing, "nomap");
  check(r == 0 && cmap_has(&missing, S("x")) == 0, "cmap_has missing_map", "return %d", r);
  r = cmap_load(&missing, "d");
  check(r == -1, "cmap_load directory", "return %d, want -1", r);

  /* many entries: every one found in any case, none of the near misses */
  for (i = 0; i < 3000; ++i) n += (size_t)sprintf(buf + n, "Host%d.Example\n", i);
  check_write("bigmap", buf, n, 0644);
  cmap_load(&big, "bigmap");
  ok = 1;
  for (i = 0; i < 3000 && ok; ++i) {
    char k[64];
    int kl = sprintf(k, i & 1 ? "host%d.example" : "HOST%d.EXAMPLE", i);
    if (cmap_has(&big, k, (size_t)kl) != 1)
      ok = check(0, "cmap_has many_entries", "%s missing", k);
    kl = sprintf(k, "host%d.example", i + 3000);
    if (ok && cmap_has(&big, k, (size_t)kl) != 0)
      ok = check(0, "cmap_has many_entries", "%s found", k);
    kl = sprintf(k, "host%d.exampl", i);
    if (ok && cmap_has(&big, k, (size_t)kl) != 0)
      ok = check(0, "cmap_has many_entries", "%s found", k);
  }
  if (ok) check(1, "cmap_has many_entries", "%s", "");
  /* duplicate entries are harmless */
  check_write("dupmap", S("a\nA\na\n"), 0644);
  cmap_load(&m, "dupmap");
  check(cmap_has(&m, S("a")) == 1 && cmap_has(&m, S("b")) == 0, "cmap_has duplicates", "wrong");
}

static void home_cases(void)
{
  size_t used;
  unsigned long u;
  unsetenv("QMAILHOME");
  check_str("control_home default", control_home(), "/var/qmail");
  setenv("QMAILHOME", "", 1);
  check_str("control_home empty_is_default", control_home(), "/var/qmail");
  setenv("QMAILHOME", check_dir, 1);
  check_str("control_home env", control_home(), check_dir);
  check(control_chdir() == 0, "control_chdir env", "failed");
  setenv("QMAILHOME", "/nonexistent/qmail", 1);
  check(control_chdir() == -1, "control_chdir missing", "succeeded");
  if (chdir(check_dir) == -1) check(0, "control_chdir back", "cannot chdir");
  unsetenv("QMAILHOME");
  u = control_scanulong("123abc", &used);
  check(u == 123 && used == 3, "control_scanulong digits", "%lu used %zu", u, used);
  u = control_scanulong("abc", &used);
  check(u == 0 && used == 0, "control_scanulong none", "%lu used %zu", u, used);
  u = control_scanulong("0042", 0);
  check(u == 42, "control_scanulong null_used", "%lu", u);
}

/* cdbfile - a cdb-shaped file: size bytes, every table at pos with n slots */
static int cdbfile(const char *fn, size_t size, unsigned pos, unsigned n)
{
  static unsigned char b[8192];
  int i, fd;
  memset(b, 0, sizeof b);
  for (i = 0; i < 256; ++i) {
    unsigned char *e = b + 8 * i;
    e[0] = pos & 255; e[1] = pos >> 8 & 255; e[2] = pos >> 16 & 255; e[3] = pos >> 24;
    e[4] = n & 255; e[5] = n >> 8 & 255;
  }
  fd = open(fn, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd == -1 || write(fd, b, size) != (ssize_t)size) return -1;
  lseek(fd, 0, SEEK_SET);
  return fd;
}

/* control_cdbcheck: zero bytes or a cut file must not read as an empty cdb */
static void cdbcheck_cases(void)
{
  static const struct { const char *name; size_t size; unsigned pos, n; int want; } c[] = {
    {"empty_cdb_ok", 2048, 2048, 0, 0},
    {"tables_at_end_ok", 4096, 2048, 256, 0},
    {"zero_filled", 4096, 0, 0, -1},
    {"short", 1000, 2048, 0, -1},
    {"table_past_end", 4096, 2048, 257, -1},
    {"pointer_past_end", 2048, 2056, 0, -1},
  };
  size_t i;
  for (i = 0; i < sizeof c / sizeof c[0]; ++i) {
    char n[64];
    int fd = cdbfile("cdb", c[i].size, c[i].pos, c[i].n), r;
    snprintf(n, sizeof n, "control_cdbcheck %s", c[i].name);
    r = fd == -1 ? -2 : control_cdbcheck(fd);
    check(r == c[i].want && (r == 0 || errno == EPROTO), n, "return %d, want %d", r, c[i].want);
    if (fd != -1) close(fd);
  }
}

int main(void)
{
  check_tmpdir("control");
  mkdir("d", 0755);
  readline_cases();
  readint_cases();
  readfile_cases();
  cmap_cases();
  home_cases();
  cdbcheck_cases();
  return check_done();
}
