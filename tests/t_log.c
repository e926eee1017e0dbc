/* t_log - log.c: fd 2 is pointed at a scratch file and every line is compared byte for byte:
 * "pid=N event=E" first, key=value fields, client values escaped (control bytes, quote, =,
 * backslash, bytes over 126 as \xNN), quoted when they hold a space, cut at LOG_VALUE_MAX;
 * addresses in <>; LOGLEVEL parsing and log_on. */
#include <limits.h>
#include "log.h"
#include "check.h"

static char pidpfx[64];
static int savedfd2 = -1;

/* capture - empty the scratch file that fd 2 points at */
static void capture(void)
{
  if (ftruncate(2, 0) == -1 || lseek(2, 0, SEEK_SET) == -1) {
    check(0, "capture", "fixture: cannot reset fd 2");
    exit(1);
  }
}

/* expect - the captured bytes must be exactly pid=N + want */
static void expect(const char *name, const char *want, size_t wantlen)
{
  static char w[70000];
  size_t n = strlen(pidpfx), len;
  char *got = check_readfile("log", &len);
  memcpy(w, pidpfx, n);
  memcpy(w + n, want, wantlen);
  n += wantlen;
  if (!got) check(0, name, "no log file");
  else check_bytes(name, got, len, w, n);
  free(got);
}

#define S(x) x, sizeof x - 1

struct ecase {
  const char *name;
  const char *value;
  size_t len;
  const char *want;  /* the field as written, after " v=" */
  size_t wantlen;
};

static const struct ecase ecases[] = {
  {"plain", S("mx.example.test"), S("mx.example.test")},
  {"space_quoted", S("a b"), S("\"a b\"")},
  {"cr_lf", S("x\r\nevent=forged"), S("x\\x0d\\x0aevent\\x3dforged")},
  {"quote", S("a\"b"), S("a\\x22b")},
  {"equals", S("a=b"), S("a\\x3db")},
  {"backslash", S("a\\b"), S("a\\x5cb")},
  {"tab", S("a\tb"), S("a\\x09b")},
  {"nul", S("a\0b"), S("a\\x00b")},
  {"del", S("a\x7f"), S("a\\x7f")},
  {"high_bytes", S("\xe9\xff\x80"), S("\\xe9\\xff\\x80")},
  {"low_bytes", S("\x01\x1f"), S("\\x01\\x1f")},
  {"printable_kept", S("!#$%&'()*+,-./:;<>?@[]^_`{|}~"), S("!#$%&'()*+,-./:;<>?@[]^_`{|}~")},
  {"space_and_escapes", S("a \"b\"=c"), S("\"a \\x22b\\x22\\x3dc\"")},
  {"only_space", S(" "), S("\" \"")},
  {"empty", S(""), S("")},
  {"forged_line", S("x\npid=1 event=accept"), S("\"x\\x0apid\\x3d1 event\\x3daccept\"")},
  {0, 0, 0, 0, 0}
};

static void escape_cases(void)
{
  const struct ecase *c;
  for (c = ecases; c->name; ++c) {
    char n[100], w[400];
    size_t wl;
    snprintf(n, sizeof n, "log_client %s", c->name);
    capture();
    log_start("t");
    log_client("v", c->value, c->len);
    log_end();
    wl = (size_t)snprintf(w, sizeof w, " event=t v=");
    memcpy(w + wl, c->want, c->wantlen);
    wl += c->wantlen;
    w[wl++] = '\n';
    expect(n, w, wl);
  }
}

static void cut_cases(void)
{
  static char v[1000], w[5000];
  size_t n, i;
  memset(v, 'a', sizeof v);
  capture();
  log_start("t");
  log_client("v", v, 300);
  log_end();
  n = (size_t)sprintf(w, " event=t v=");
  memset(w + n, 'a', LOG_VALUE_MAX); n += LOG_VALUE_MAX;
  w[n++] = '\n';
  expect("log_client cut", w, n);

  capture();
  log_start("t");
  log_client("v", v, LOG_VALUE_MAX);
  log_end();
  expect("log_client exactly_max", w, n);

  memset(v, '"', sizeof v);
  capture();
  log_start("t");
  log_client("v", v, 300);
  log_end();
  n = (size_t)sprintf(w, " event=t v=");
  for (i = 0; i < LOG_VALUE_MAX; ++i) n += (size_t)sprintf(w + n, "\\x22");
  w[n++] = '\n';
  expect("log_client cut_before_escaping", w, n);

  memset(v, 'b', sizeof v);
  v[LOG_VALUE_MAX + 10] = ' ';  /* after the cut: not quoted */
  capture();
  log_start("t");
  log_client("v", v, 300);
  log_end();
  n = (size_t)sprintf(w, " event=t v=");
  memset(w + n, 'b', LOG_VALUE_MAX); n += LOG_VALUE_MAX;
  w[n++] = '\n';
  expect("log_client space_after_cut", w, n);

  v[LOG_VALUE_MAX - 1] = ' ';  /* the last byte kept */
  capture();
  log_start("t");
  log_client("v", v, 300);
  log_end();
  n = (size_t)sprintf(w, " event=t v=\"");
  memset(w + n, 'b', LOG_VALUE_MAX - 1); n += LOG_VALUE_MAX - 1;
  memcpy(w + n, " \"\n", 3); n += 3;
  expect("log_client space_at_cut", w, n);

  /* log_addr cuts too */
  memset(v, 'c', sizeof v);
  v[999] = 0;
  capture();
  log_start("t");
  log_addr("to", v);
  log_end();
  n = (size_t)sprintf(w, " event=t to=<");
  memset(w + n, 'c', LOG_VALUE_MAX); n += LOG_VALUE_MAX;
  memcpy(w + n, ">\n", 2); n += 2;
  expect("log_addr cut", w, n);
}

/* a line of many long client values: one line under LOG_LINE_MAX, the cut value's quote
 * closed at an escape boundary, trunc=1 at the end, the fields after the cut left out */
static void line_cap_cases(void)
{
  static char v[300];
  size_t len, i;
  char *got;
  memset(v, '"', sizeof v);
  v[5] = ' ';
  capture();
  log_start("t");
  for (i = 0; i < 8; ++i) log_client("v", v, sizeof v);
  log_str("last", "x");
  log_end();
  got = check_readfile("log", &len);
  check(got && len <= LOG_LINE_MAX, "log_end line_capped", "%lu bytes", (unsigned long)len);
  check(got && len > 3000, "log_end line_filled", "%lu bytes", (unsigned long)len);
  check(got && len > 10 && !memcmp(got + len - 10, "\" trunc=1\n", 10), "log_end cut_marked",
        "ends %.20s", got ? got + (len > 20 ? len - 20 : 0) : "");
  check(got && memchr(got, '\n', len) == got + len - 1, "log_end one_line", "LF inside");
  check(got && !strstr(got, "last="), "log_end rest_left_out", "a field after the cut");
  free(got);
  capture();  /* the next line is whole again */
  log_start("t");
  log_str("a", "b");
  log_end();
  expect("log_end next_line_whole", S(" event=t a=b\n"));
}

static void field_cases(void)
{
  char w[300];
  capture();
  log_start("connect");
  log_str("ip", "192.0.2.7");
  log_clients("host", "mx.example.test");
  log_str("relay", "no");
  log_end();
  expect("log line_order", S(" event=connect ip=192.0.2.7 host=mx.example.test relay=no\n"));

  capture();
  log_start("t");
  log_clients("helo", 0);
  log_clients("x", "");
  log_end();
  expect("log_clients null_and_empty", S(" event=t helo= x=\n"));

  capture();
  log_start("t");
  log_clients("helo", "a\rb c");
  log_end();
  expect("log_clients escapes", S(" event=t helo=\"a\\x0db c\"\n"));

  capture();
  log_start("t");
  log_addr("from", "a@b.test");
  log_addr("to", "");
  log_addr("x", "a b@c");
  log_addr("y", "a\"=\\\n@\xe9");
  log_end();
  expect("log_addr forms",
         S(" event=t from=<a@b.test> to=<> x=\"<a b@c>\" y=<a\\x22\\x3d\\x5c\\x0a@\\xe9>\n"));

  capture();
  log_start("t");
  log_ulong("a", 0);
  log_ulong("b", 4242);
  log_ulong("c", ULONG_MAX);
  log_end();
  snprintf(w, sizeof w, " event=t a=0 b=4242 c=%lu\n", ULONG_MAX);
  expect("log_ulong", w, strlen(w));

  /* two events, two lines */
  capture();
  log_start("one");
  log_end();
  log_start("two");
  log_str("k", "v");
  log_end();
  {
    char *got;
    size_t len;
    char want[200];
    int n = snprintf(want, sizeof want, "%s event=one\n%s event=two k=v\n", pidpfx, pidpfx);
    got = check_readfile("log", &len);
    if (got) check_bytes("log two_lines", got, len, want, (size_t)n);
    else check(0, "log two_lines", "no log file");
    free(got);
  }

  /* a line longer than LOG_LINE_MAX arrives cut, as one line, with one newline at its end */
  {
    static char v[150];
    char *got;
    size_t len, i, nl = 0;
    int j;
    memset(v, 'v', sizeof v - 1);
    capture();
    log_start("long");
    for (j = 0; j < 40; ++j) log_clients("k", v);
    log_end();
    got = check_readfile("log", &len);
    for (i = 0; got && i < len; ++i) nl += got[i] == '\n';
    check(got && nl == 1 && got[len - 1] == '\n' && len <= LOG_LINE_MAX &&
              len > LOG_LINE_MAX - 200 && !memcmp(got + len - 9, " trunc=1\n", 9),
          "log long_line", "len %zu newlines %zu", len, nl);
    free(got);
  }
}

struct lvcase {
  const char *env;  /* 0: unset */
  int start, want;
};

static const struct lvcase lvcases[] = {
  {0, 2, 2}, {"0", 2, 0}, {"1", 2, 1}, {"3", 2, 3}, {"4", 2, 4}, {"9", 2, 9}, {"12", 2, 1},
  {"x", 3, 3}, {"", 3, 3}, {" 4", 3, 3}, {"-1", 3, 3}, {0, 4, 4},
  {0, 0, 0}
};

static void level_cases(void)
{
  const struct lvcase *c;
  for (c = lvcases; c->start; ++c) {
    char n[100];
    if (c->env) setenv("LOGLEVEL", c->env, 1);
    else unsetenv("LOGLEVEL");
    log_level = c->start;
    log_init();
    snprintf(n, sizeof n, "log_init LOGLEVEL=%s from %d", c->env ? c->env : "(unset)", c->start);
    check_long(n, log_level, c->want);
  }
  unsetenv("LOGLEVEL");
  log_level = 2;
  log_init();
  check(log_level == LOG_INFO, "log_init default_is_info", "level %d", log_level);
  check(log_on(LOG_ERROR) && log_on(LOG_INFO) && !log_on(LOG_REPLY) && !log_on(LOG_DEBUG),
        "log_on level_2", "wrong");
  log_level = 0;
  check(!log_on(LOG_ERROR), "log_on level_0", "errors on");
  log_level = 4;
  check(log_on(LOG_DEBUG), "log_on level_4", "debug off");
  log_level = 2;
}

int main(void)
{
  int fd;
  check_tmpdir("log");
  fd = open("log", O_RDWR | O_CREAT | O_TRUNC, 0644);
  savedfd2 = dup(2);
  if (fd == -1 || savedfd2 == -1 || dup2(fd, 2) == -1) {
    printf("FAIL t_log: fixture: cannot redirect fd 2\n");
    return 1;
  }
  unsetenv("LOGLEVEL");
  log_init();
  snprintf(pidpfx, sizeof pidpfx, "pid=%ld", (long)getpid());
  escape_cases();
  cut_cases();
  line_cap_cases();
  field_cases();
  level_cases();
  dup2(savedfd2, 2);
  return check_done();
}
