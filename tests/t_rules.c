/* t_rules - rules.c and pattern.c: globs; the regex machine against glibc's regexec as the
 * oracle (same answers on every pattern x subject pair); the step budget; CIDR v4/v6; the
 * parser (every action, condition, EXCEPT, texts, errors, scopes, Obtuse lines with the
 * reference's examples); and evaluation of compiled sets on hand-filled sessions (first
 * match, the order mandatory > user > domain > default, extensions, settings, tags, observe,
 * broken sets and cdbs answered 451). rules.c keeps per-session state, so every evaluation
 * fixture runs in a child with its own scratch qmail home. */
#include <regex.h>
#include <sys/wait.h>
#include <time.h>
#include <cdb_make.h>
#include "pattern.h"
#include "rules.h"
#include "check.h"

static void glob_cases(void)
{
  static const struct { const char *p, *s; int m; } c[] = {
    {"*", "", 1}, {"*", "abc", 1}, {"a*c", "abc", 1}, {"a*c", "ab", 0}, {"?b?", "abc", 1},
    {"*.example.com", "mail.example.com", 1}, {"*.example.com", "example.com", 0},
    {"*@*.example.com", "u@a.example.com", 1}, {"", "", 1}, {"", "a", 0}, {"a**b", "ab", 1},
    {"*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0}, {"192.168.20.*", "192.168.20.7", 1},
    {"192.168.20.*", "192.168.2.7", 0}, {"x?", "x", 0},
  };
  size_t i;
  int bad = 0;
  for (i = 0; i < sizeof c / sizeof c[0]; ++i)
    if (pat_glob(c[i].p, c[i].s) != c[i].m) {
      check(0, "glob", "%s on %s: %d", c[i].p, c[i].s, !c[i].m);
      bad = 1;
    }
  if (!bad) check(1, "glob", "%s", "");
}

/* regex_oracle - the machine agrees with regexec(REG_EXTENDED|REG_ICASE) */
static void regex_oracle(void)
{
  static const char *const pats[] = {
    "dsl", "^dsl", "dsl$", "d.l", "[0-9]+-[0-9]+", "^[a-z]+[0-9]{1,3}\\.", "(dyn|pool|dhcp)[.-]",
    "a|b|c", "x(ab)*y", "x(ab)+y", "x(ab)?y", "[^a-z]", "^$", "a{2}", "a{2,}", "a{1,3}b",
    "(a|ab)(c|bcd)(d*)", "^(([0-9]{1,3})[.-]){3}[0-9]{1,3}", "host-?[0-9]+", "\\.dip[0-9]*\\.",
    "c-[0-9]+-[0-9]+-[0-9]+-[0-9]+\\.hsd1\\.", "[.]", "[a\\]]", "ab|cd|ef$", "(^|\\.)ppp",
    "[A-Z]+", "[a\\.]", "q*", "(x|)y", "client[s]?\\.",
  };
  static const char *const subj[] = {
    "", "dsl", "adsl-1-2-3-4.example.net", "dsl.example", "mail.example.com", "1-2-3-4.pool.x.de",
    "dyn-12.example", "xaby", "xababy", "xy", "abcd", "aab", "aaab", "10.0.0.1.example", "host12.x",
    "h.dip0.t-ipconnect.de", "c-73-22-1-9.hsd1.ca.comcast.net", "a]", "ef", "xppp.y", "ppp",
    "y", "clients.example", "ABC", "[", "qqq",
  };
  size_t i, j;
  int bad = 0;
  char lower[256];
  for (i = 0; i < sizeof pats / sizeof pats[0]; ++i) {
    stralloc prog = {0};
    const char *err = 0;
    regex_t re;
    if (pat_recompile(&prog, pats[i], &err) == -1) {
      check(0, "regex compiles", "%s: %s", pats[i], err);
      bad = 1;
      continue;
    }
    if (regcomp(&re, pats[i], REG_EXTENDED | REG_ICASE | REG_NOSUB)) continue;
    for (j = 0; j < sizeof subj / sizeof subj[0]; ++j) {
      size_t k;
      int want, got;
      for (k = 0; subj[j][k]; ++k) lower[k] = (char)(subj[j][k] >= 'A' && subj[j][k] <= 'Z' ? subj[j][k] + 32 : subj[j][k]);
      lower[k] = 0;
      want = regexec(&re, subj[j], 0, 0, 0) == 0;
      got = pat_rematch(prog.s, lower);
      if (want != got) {
        check(0, "regex vs regexec", "/%s/ on \"%s\": got %d, regexec %d", pats[i], subj[j], got, want);
        bad = 1;
      }
    }
    regfree(&re);
  }
  if (!bad) check(1, "regex agrees with regexec on every pair", "%s", "");
}

/* regex_random - random patterns from a small alphabet against random strings */
static void regex_random(void)
{
  static const char atoms[] = "ab.";
  int n, bad = 0, tried = 0;
  srand(7);
  for (n = 0; n < 3000 && !bad; ++n) {
    char p[32], s[16];
    size_t pl = 0, sl = (size_t)(rand() % 10), k;
    int parts = 1 + rand() % 5;
    stralloc prog = {0};
    const char *err;
    regex_t re;
    if (rand() % 4 == 0) p[pl++] = '^';
    while (parts--) {
      int kind = rand() % 6;
      if (kind == 0) { p[pl++] = '('; p[pl++] = atoms[rand() % 3]; p[pl++] = '|'; p[pl++] = atoms[rand() % 3]; p[pl++] = ')'; }
      else if (kind == 1) { p[pl++] = '['; p[pl++] = 'a'; p[pl++] = ']'; }
      else p[pl++] = atoms[rand() % 3];
      if (rand() % 3 == 0) p[pl++] = "*+?"[rand() % 3];
    }
    if (rand() % 4 == 0) p[pl++] = '$';
    p[pl] = 0;
    for (k = 0; k < sl; ++k) s[k] = "abc"[rand() % 3];
    s[sl] = 0;
    if (pat_recompile(&prog, p, &err) == -1) continue;
    if (regcomp(&re, p, REG_EXTENDED | REG_NOSUB)) continue;
    ++tried;
    if ((regexec(&re, s, 0, 0, 0) == 0) != pat_rematch(prog.s, s)) {
      check(0, "random regexes", "/%s/ on \"%s\" differs from regexec", p, s);
      bad = 1;
    }
    regfree(&re);
  }
  if (!bad) check(tried > 2000, "random regexes agree with regexec", "only %d tried", tried);
}

static void regex_budget(void)
{
  stralloc prog = {0};
  const char *err;
  char s[4001];
  clock_t t;
  int r;
  memset(s, 'a', 4000);
  s[4000] = 0;
  pat_recompile(&prog, "(a*)*(a*)*(a*)*b", &err);
  t = clock();
  r = pat_rematch(prog.s, s);
  check(r != 1 && (double)(clock() - t) / CLOCKS_PER_SEC < 0.5, "regex step budget",
        "r=%d after %.2fs", r, (double)(clock() - t) / CLOCKS_PER_SEC);
  check(pat_recompile(&prog, "(a", &err) == -1 && pat_recompile(&prog, "a{99}", &err) == -1 &&
        pat_recompile(&prog, "*a", &err) == -1 && pat_recompile(&prog, "[a", &err) == -1 &&
        pat_recompile(&prog, "\\1", &err) == -1,
        "regex syntax errors refused", "%s", "");
  prog.len = 0;
  pat_recompile(&prog, "foo[0-9]+bar", &err);
  check(!strcmp(prog.s, "bar") || !strcmp(prog.s, "foo"), "regex prefilter literal", "%s", prog.s);
  prog.len = 0;
  pat_recompile(&prog, "a|b", &err);
  check(!*prog.s, "no prefilter under alternation", "%s", prog.s);
}

static void cidr_cases(void)
{
  static const struct { const char *c, *ip; int m; } c[] = {
    {"192.0.2.0/24", "192.0.2.77", 1}, {"192.0.2.0/24", "192.0.3.1", 0}, {"10.0.0.0/8", "10.255.1.1", 1},
    {"0.0.0.0/0", "203.0.113.9", 1}, {"192.0.2.7", "192.0.2.7", 1}, {"192.0.2.7", "192.0.2.8", 0},
    {"192.0.2.128/25", "192.0.2.127", 0}, {"192.0.2.128/25", "192.0.2.200", 1},
    {"2001:db8::/32", "2001:db8:1::5", 1}, {"2001:db8::/32", "2001:db9::5", 0},
    {"2001:db8:0:1::/64", "2001:db8:0:1:ffff::1", 1}, {"2001:db8::/32", "192.0.2.1", 0},
    {"::/0", "::1", 1}, {"fe80::/10", "febf::1", 1}, {"fe80::/10", "fec0::1", 0},
  };
  size_t i;
  int bad = 0;
  for (i = 0; i < sizeof c / sizeof c[0]; ++i) {
    char a[PAT_CIDR_LEN], b[PAT_CIDR_LEN];
    if (pat_cidr_parse(a, c[i].c) || pat_ip_parse(b, c[i].ip) || pat_cidr_match(a, b) != c[i].m) {
      check(0, "cidr", "%s vs %s", c[i].c, c[i].ip);
      bad = 1;
    }
  }
  {
    char a[PAT_CIDR_LEN];
    if (!pat_cidr_parse(a, "192.0.2.0/33") || !pat_cidr_parse(a, "1.2.3") || !pat_cidr_parse(a, "::/129") ||
        !pat_cidr_parse(a, "192.0.2.0/") || !pat_ip_parse(a, "10.0.0.0/8"))
      { check(0, "cidr", "a bad range was accepted"); bad = 1; }
  }
  if (!bad) check(1, "cidr v4 and v6", "%s", "");
}

/* parse - one line; returns the dump of both sets, or "ERR: message" */
static const char *parse(const char *line, int scope)
{
  static stralloc sets[2], out;
  const char *err = 0;
  int r;
  sets[0].len = sets[1].len = 0;
  out.len = 0;
  r = rules_parse_line(sets, line, "f:1", scope, &err);
  if (r == -1) { stralloc_copys(&out, "ERR: "); stralloc_cats(&out, err); stralloc_0(&out); return out.s; }
  if (r == -2) { stralloc_copys(&out, "SKIP: "); stralloc_cats(&out, err); stralloc_0(&out); return out.s; }
  if (sets[0].len) { stralloc_cats(&out, "M "); rules_dump(&out, sets[0].s, sets[0].len); }
  rules_dump(&out, sets[1].s, sets[1].len);
  stralloc_0(&out);
  return out.s;
}

static void parser_cases(void)
{
  static const struct { const char *line; int scope; const char *want; } c[] = {
    {"# comment", RS_DEFAULT, ""},
    {"   ", RS_DEFAULT, ""},
    {"deny", RS_DEFAULT, "f:1: deny\n"},
    {"deny if ip=192.0.2.0/24", RS_DEFAULT, "f:1: deny ip=192.0.2.0/24\n"},
    {"deny ip=2001:DB8::/32,10.1.2.3", RS_DEFAULT, "f:1: deny ip=2001:db8::/32,10.1.2.3/32\n"},
    {"deny drop if helo=*.Example.COM", RS_DEFAULT, "f:1: deny helo=*.example.com\n"},
    {"mandatory deny from=<>", RS_DEFAULT, "M f:1: mandatory deny from=\n"},
    {"observe noto to=a@b.test \"550 5.7.1 no %T\"", RS_DEFAULT, "f:1: observe noto to=a@b.test \"550 5.7.1 no %T\"\n"},
    {"defer if fcrdns=temp \"450 4.7.25 later\"", RS_DEFAULT, "f:1: defer fcrdns=temp \"450 4.7.25 later\"\n"},
    {"tarpit 5 if dynamic=yes", RS_DEFAULT, "f:1: tarpit 5 dynamic=yes\n"},
    {"set GREYLIST=1 SPAMD=1 if to=*@x.test", RS_DEFAULT, "f:1: set GREYLIST=1 SPAMD=1 to=*@x.test\n"},
    {"tag \"X-Seen: yes\" if country=CN,RU", RS_DEFAULT, "f:1: tag X-Seen: yes country=cn,ru\n"},
    {"deny size>10000000", RS_DEFAULT, "f:1: deny size>10000000\n"},
    {"deny dnsblscore>=2", RS_DEFAULT, "f:1: deny dnsblscore>=2\n"},
    {"allow env.RELAYCLIENT=* auth!=", RS_DEFAULT, "ERR: empty value (use <> for the null sender)"},
    {"allow env.RELAYCLIENT=*", RS_DEFAULT, "f:1: allow env.RELAYCLIENT=*\n"},
    {"deny heloclass=literal,ip,nodot", RS_DEFAULT, "f:1: deny heloclass=literal,ip,nodot\n"},
    {"deny from=/^[0-9]+@/", RS_DEFAULT, "f:1: deny from=/regex/\n"},
    {"deny from=/(/", RS_DEFAULT, "SKIP: missing )"},
    {"frob if ip=1.2.3.4", RS_DEFAULT, "ERR: unknown action"},
    {"deny if colour=red", RS_DEFAULT, "ERR: unknown fact"},
    {"deny if ip", RS_DEFAULT, "ERR: expected fact=value"},
    {"deny if helo>3", RS_DEFAULT, "ERR: < and > compare numbers only"},
    {"deny if size>big", RS_DEFAULT, "ERR: not a number"},
    {"deny \"451 4.7.1 no\"", RS_DEFAULT, "ERR: deny and noto need a 5xx code"},
    {"defer \"550 no\"", RS_DEFAULT, "ERR: defer needs a 4xx code"},
    {"deny \"550 4.7.1 no\"", RS_DEFAULT, "ERR: status code class differs"},
    {"deny \"550 bad \xe9 byte\"", RS_DEFAULT, "ERR: reply text with control or non-ASCII characters"},
    {"deny \"550 bad \x01 byte\"", RS_DEFAULT, "ERR: control character in the line"},
    {"deny if env=x", RS_DEFAULT, "ERR: env needs a name: env.NAME"},
    {"deny \"550 bad %Q\"", RS_DEFAULT, "ERR: unknown % expansion in reply text"},
    {"deny \"550 unterminated", RS_DEFAULT, "ERR: missing closing quote"},
    {"deny \"550 x\" ip=1.2.3.4", RS_DEFAULT, "ERR: the reply text must come last"},
    {"set FROBNICATE=1", RS_DEFAULT, "ERR: unknown setting name (see mxguard-rules(8))"},
    {"set", RS_DEFAULT, "ERR: set needs NAME=VALUE"},
    {"tarpit x", RS_DEFAULT, "ERR: tarpit needs seconds (at most 3600)"},
    {"tarpit 99999", RS_DEFAULT, "ERR: tarpit needs seconds (at most 3600)"},
    {"tag \"no colon\"", RS_DEFAULT, "ERR: tag needs a printable \"Name: value\" header line"},
    {"allow \"250 ok\"", RS_DEFAULT, "ERR: only deny, noto and defer take a reply text"},
    {"mandatory deny", RS_USER, "ERR: mandatory belongs in the global rules"},
    {"tag \"X-A: b\"", RS_DOMAIN, "ERR: tag changes the message for every recipient: global rules only"},
    {"deny drop", RS_USER, "ERR: drop ends the session for every recipient: global rules only"},
    {"deny from=*@spam.test", RS_USER, "f:1: deny from=*@spam.test\n"},
    /* Obtuse smtpd_check_rules, the reference's examples */
    {"deny:*.spamhaus.com *.junkmail.com:ALL:ALL", RS_DEFAULT,
     "f:1: deny src=*.spamhaus.com,*.junkmail.com ofrom=* oto=* \"550 Mail from %F to %T prohibited from your location (%U@%H ip=%I)\"\n"},
    {"noto:ALL:ALL:*%*@*:551 Sorry %H (%I), I don't allow relaying to %T", RS_DEFAULT,
     "f:1: noto src=* ofrom=* oto=*%*@* \"551 Sorry %H (%I), I don't allow relaying to %T\"\n"},
    {"noto:RBL.rbl.maps.vix.com:ALL:ALL:550 see http%C//maps.vix.com/rbl/", RS_DEFAULT,
     "f:1: noto src=RBL.rbl.maps.vix.com ofrom=* oto=* \"550 see http%C//maps.vix.com/rbl/\"\n"},
    {"allow:192.168.0.0/16, 10.0.0.0/8 EXCEPT 10.1.0.0/16:ALL:ALL", RS_DEFAULT,
     "f:1: allow src=192.168.0.0/16,10.0.0.0/8,EXCEPT10.1.0.0/16 ofrom=* oto=*\n"},
    {"noto:KNOWN UNKNOWN:ALL:ALL:#just a comment", RS_DEFAULT,
     "f:1: noto src=KNOWN,UNKNOWN ofrom=* oto=* \"550 Mail from %F to %T prohibited from your location (%U@%H ip=%I)\"\n"},
    {"noto:ALL:ALL:ALL:550 x:junk", RS_DEFAULT, "ERR: junk at end of line"},
    {"noto:ALL:ALL:ALL:550 x:#comment", RS_DEFAULT, "f:1: noto src=* ofrom=* oto=* \"550 x\"\n"},
    {"noto:ALL:ALL", RS_DEFAULT, "ERR: fewer than four fields"},
    {"noto:ALL::ALL:ALL", RS_DEFAULT, "f:1: noto src=* ofrom=* oto=* \"550 Mail from %F to %T prohibited from your location (%U@%H ip=%I)\"\n"},
    {"noto:NS=foo:ALL:ALL", RS_DEFAULT, "ERR: NS= patterns are not supported"},
    {"noto:ALL:ALL:ALL:no code here", RS_DEFAULT, "f:1: noto src=* ofrom=* oto=* \"550 Recipient not allowed\"\n"},
    {"bogus:ALL:ALL:ALL", RS_DEFAULT, "ERR: unknown action"},
  };
  size_t i;
  for (i = 0; i < sizeof c / sizeof c[0]; ++i) {
    const char *got = parse(c[i].line, c[i].scope);
    char name[160];
    snprintf(name, sizeof name, "parse %.100s", c[i].line);
    check(!strcmp(got, c[i].want), name, "got %s, want %s", check_esc(got, strlen(got)),
          check_esc(c[i].want, strlen(c[i].want)));
  }
}

/* ---- evaluation: a scratch qmail home with a hand-made rules.cdb, one child per case */

static void set(stralloc *sa, const char *x)
{
  stralloc_copys(sa, x);
  stralloc_0(sa);
  --sa->len;
}

/* mkcdb - sets given as "KEY|line\nline..." strings */
static void mkcdb(const char *dir, const char *const *sets)
{
  static struct cdb_make cm;
  stralloc s[2] = {{0}, {0}}, path = {0}, G = {0}, g = {0};
  int fd;
  size_t i;
  unsigned used = 0;
  stralloc_copys(&path, dir);
  stralloc_cats(&path, "/control/rules.cdb");
  stralloc_0(&path);
  fd = open(path.s, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  cdb_make_start(&cm, fd);
  for (i = 0; sets[i]; ++i) {
    const char *bar = strchr(sets[i], '|'), *p = bar + 1;
    char key[200];
    int scope;
    size_t n = 0;
    memcpy(key, sets[i], (size_t)(bar - sets[i]));
    key[bar - sets[i]] = 0;
    scope = key[0] == 'U' ? RS_USER : key[0] == 'D' ? RS_DOMAIN : RS_DEFAULT;
    s[0].len = s[1].len = 0;
    while (*p) {
      char line[1000], origin[300];
      const char *nl = strchr(p, '\n'), *err;
      size_t l = nl ? (size_t)(nl - p) : strlen(p);
      memcpy(line, p, l);
      line[l] = 0;
      snprintf(origin, sizeof origin, "%s:%lu", key, (unsigned long)++n);
      if (!strcmp(line, "ERROR")) rules_error_rule(&s[1], origin);
      else if (rules_parse_line(s, line, origin, scope, &err)) printf("fixture: %s: %s\n", line, err);
      p += l + (nl ? 1 : 0);
    }
    used |= rules_facts_used(s[0].s, s[0].len) | rules_facts_used(s[1].s, s[1].len);
    if (getenv("T_OPTIMIZE") && (rules_optimize(&s[0]) == -1 || rules_optimize(&s[1]) == -1))
      printf("FAIL %s: rules_optimize failed\n", key);
    if (key[0] == 'G') { stralloc_cat(&G, &s[0]); stralloc_cat(&g, &s[1]); continue; }
    cdb_make_add(&cm, (unsigned char *)key, strlen(key), (unsigned char *)s[1].s, s[1].len);
  }
  {
    stralloc four[4] = {{0}, {0}, {0}, {0}}, h = {0};
    four[0] = G; four[1] = g;
    rules_early(G.s ? G.s : "", G.len, &four[2]);
    rules_early(g.s ? g.s : "", g.len, &four[3]);
    rules_header(&h, used, four);
    cdb_make_add(&cm, (const unsigned char *)"H", 1, (unsigned char *)h.s, h.len);
  }
  cdb_make_finish(&cm);
  close(fd);
}

static struct session s;

/* evalcase - in a child: chdir to a home with the given sets, then at RCPT for each of
 * rcpts ("addr" or "addr=expected code"), check the code (and text substring after ~) */
static void evalcase(const char *name, const char *const *sets, const char *ip, const char *helo,
                     const char *from, const char *const *rcpts, const char *extra_check)
{
  char dir[300];
  pid_t pid;
  int st;
  snprintf(dir, sizeof dir, "%s/%s", check_dir, name);
  for (char *p = dir + strlen(check_dir) + 1; *p; ++p) if (*p == ' ' || *p == '/') *p = '_';
  mkdir(dir, 0755);
  {
    char c[400];
    snprintf(c, sizeof c, "%s/control", dir);
    mkdir(c, 0755);
  }
  if (sets) mkcdb(dir, sets);
  fflush(stdout);
  pid = fork();
  if (!pid) {
    size_t i;
    struct decision d;
    if (chdir(dir)) { printf("FAIL %s: chdir\n", name); fflush(stdout); _exit(2); }
    memset(&s, 0, sizeof s);
    s.remoteip = ip; s.remotehost = "unknown";
    set(&s.helo, helo);
    set(&s.mailfrom, from);
    s.seenmail = 1;
    rules_start(&s);
    d = rules_mail(&s);
    rules_newmail();
    for (i = 0; rcpts[i]; ++i) {
      char a[300], *eq, *tilde;
      int want;
      snprintf(a, sizeof a, "%s", rcpts[i]);
      eq = strchr(a, '=');
      *eq = 0;
      want = atoi(eq + 1);
      tilde = strchr(eq + 1, '~');
      set(&s.rcpt, a);
      d = rules_rcpt(&s);
      if (d.code != want) {
        printf("FAIL %s: %s: code %d, want %d (%s)\n", name, a, d.code, want, d.reason ? d.reason : "");
        fflush(stdout); _exit(1);
      }
      if (tilde && (!d.text || !strstr(d.text, tilde + 1))) {
        printf("FAIL %s: %s: text \"%s\" lacks \"%s\"\n", name, a, d.text ? d.text : "", tilde + 1);
        fflush(stdout); _exit(1);
      }
      if (d.code < 400) rules_accepted();
    }
    if (extra_check) {
      if (!strcmp(extra_check, "settings")) {
        const char *a = rules_get_rcpt(0, "GREYLIST"), *b = rules_get_rcpt(1, "GREYLIST");
        const char *c = rules_get_rcpt(1, "SPAMREJECT");
        if (!a || strcmp(a, "0") || !b || strcmp(b, "1") || !c || strcmp(c, "5") || rules_get_rcpt(3, "GREYLIST")) {
          printf("FAIL %s: settings %s %s %s\n", name, a ? a : "-", b ? b : "-", c ? c : "-");
          fflush(stdout); _exit(1);
        }
      } else if (!strcmp(extra_check, "tags")) {
        const char *t = rules_tags();
        if (!t || strcmp(t, "X-One: 1\nX-Two: 2\n")) { printf("FAIL %s: tags %s\n", name, t ? t : "(none)"); fflush(stdout); _exit(1); }
      } else if (!strcmp(extra_check, "observed")) {
        if (rules_observed() != 4)  /* the ip rule for a, b and c; the noto for b */ { printf("FAIL %s: observed %u\n", name, rules_observed()); fflush(stdout); _exit(1); }
      }
    }
    printf("PASS %s\n", name);
    fflush(stdout);
    _exit(0);
  }
  waitpid(pid, &st, 0);
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) ++check_npass;
  else { ++check_nfail; if (!WIFEXITED(st)) printf("FAIL %s: crashed\n", name); fflush(stdout); }
}

static void eval_cases(void)
{
  {
    const char *sets[] = {"G|mandatory deny if ip=192.0.2.66\n"
                          "deny if from=*@spam.test \"550 5.7.1 no mail from %F\"\n"
                          "allow if ip=198.51.100.0/24\n"
                          "noto if to=closed@x.test\n"
                          "defer if from=<>,slow@x.test\n", 0};
    const char *r1[] = {"u@x.test=550~no mail from a@spam.test", 0};
    const char *r2[] = {"u@x.test=0", "closed@x.test=550~closed@x.test", 0};
    const char *r3[] = {"closed@x.test=250", 0};
    const char *r4[] = {"u@x.test=550", 0};
    const char *r5[] = {"u@x.test=451", 0};
    evalcase("first match wins: deny by sender", sets, "203.0.113.1", "h", "a@spam.test", r1, 0);
    evalcase("noto refuses one recipient only", sets, "203.0.113.1", "h", "a@ok.test", r2, 0);
    evalcase("allow before noto", sets, "198.51.100.7", "h", "a@ok.test", r3, 0);
    evalcase("mandatory before allow", sets, "192.0.2.66", "h", "a@ok.test", r4, 0);
    evalcase("null sender matches from=<>", sets, "203.0.113.1", "h", "", r5, 0);
  }
  {
    const char *sets[] = {"G|mandatory deny if from=*@evil.test\n"
                          "set GREYLIST=1 SPAMREJECT=5\n"
                          "deny if from=*@defaultdeny.test\n",
                          "Ubob@x.test|allow if from=*@defaultdeny.test\n"
                          "allow if from=*@evil.test\n"
                          "set GREYLIST=0\n"
                          "deny if from=*@bobhates.test \"550 5.7.1 bob says no\"\n",
                          "Dx.test|deny if from=*@domhates.test\n",
                          "Ubob-lists-default@x.test|deny if from=*@lists.test\n", 0};
    const char *r1[] = {"bob@x.test=550~bob says no", "alice@x.test=0", "alice@y.test=0", 0};
    const char *r2[] = {"bob@x.test=550", "alice@x.test=550", 0};
    const char *r3[] = {"bob@x.test=250", "alice@x.test=550", 0};
    const char *r4[] = {"bob@x.test=550", "alice@x.test=550", "alice@y.test=0", 0};  /* user, then domain */
    const char *r5[] = {"bob-ext@x.test=550~bob says no", "bob-lists-foo@x.test=0", 0};
    /* .qmail-lists-default covers lists-ANYTHING, not lists itself (then bob's own rules) */
    const char *r6[] = {"bob-lists-foo@x.test=550", "bob-lists@x.test=0", 0};
    const char *r7[] = {"bob@x.test=0", "alice@x.test=0", "carol@y.test=0", 0};
    evalcase("user rule for that user only", sets, "203.0.113.1", "h", "a@bobhates.test", r1, 0);
    evalcase("user allow cannot beat mandatory deny", sets, "203.0.113.1", "h", "a@evil.test", r2, 0);
    evalcase("user allow beats global default deny", sets, "203.0.113.1", "h", "a@defaultdeny.test", r3, 0);
    evalcase("domain rules for the domain only", sets, "203.0.113.1", "h", "a@domhates.test", r4, 0);
    evalcase("extension falls back to the user", sets, "203.0.113.1", "h", "a@bobhates.test", r5, 0);
    evalcase("extension -default rule set", sets, "203.0.113.1", "h", "a@lists.test", r6, 0);
    evalcase("settings first wins, per recipient", sets, "203.0.113.1", "h", "a@ok.test", r7, "settings");
  }
  {
    const char *sets[] = {"G|tag \"X-One: 1\" if ip=203.0.113.0/24\n"
                          "tag \"X-Two: 2\"\n"
                          "tag \"X-One: 1\"\n", 0};
    const char *r1[] = {"a@x.test=0", "b@x.test=0", 0};
    evalcase("tags once each, in order", sets, "203.0.113.1", "h", "a@b.test", r1, "tags");
  }
  {
    const char *sets[] = {"G|observe deny if ip=203.0.113.0/24\n"
                          "observe noto if to=b@x.test\n"
                          "deny if to=c@x.test\n", 0};
    const char *r1[] = {"a@x.test=0", "b@x.test=0", "c@x.test=550", 0};
    evalcase("observe logs and goes on", sets, "203.0.113.1", "h", "a@b.test", r1, "observed");
  }
  {
    const char *sets[] = {"G|deny if helo=*.bad.test,/^dyn[0-9]+\\./\n"
                          "deny if heloclass=literal \"550 5.7.1 literal %M\"\n"
                          "deny if ip=2001:db8::/32 size>0\n"
                          "deny if env.BLOCKME=yes\n"
                          "deny if env.MUSTHAVE!=*\n", 0};
    const char *r1[] = {"a@x.test=550", 0};
    const char *r2[] = {"a@x.test=550~literal literal", 0};
    const char *r3[] = {"a@x.test=0", 0};
    setenv("MUSTHAVE", "1", 1);
    evalcase("helo glob", sets, "203.0.113.1", "mx.bad.test", "a@b.test", r1, 0);
    evalcase("helo regex", sets, "203.0.113.1", "DYN12.example", "a@b.test", r1, 0);
    evalcase("helo class literal", sets, "203.0.113.1", "[1.2.3.4]", "a@b.test", r2, 0);
    evalcase("ipv6 with size 0 does not match size>0", sets, "2001:db8::1", "ok.test", "a@b.test", r3, 0);
    setenv("BLOCKME", "YES", 1);
    evalcase("env condition, case-insensitive", sets, "203.0.113.1", "ok.test", "a@b.test", r1, 0);
    unsetenv("BLOCKME");
    unsetenv("MUSTHAVE");
    evalcase("env unset with !=*", sets, "203.0.113.1", "ok.test", "a@b.test", r1, 0);
  }
  {
    const char *sets[] = {"G|noto:192.168.0.0/16 10.0.0.0/8 EXCEPT 10.1.0.0/16:ALL:ALL:550 no from %I\n"
                          "noto:ALL:*@obtuse.test:ALL\n"
                          "deny:ALL:ALL:*%*@*:551 Sorry %H (%I), I don't allow relaying to %T\n"
                          "noto:UNKNOWN:ALL:*@strict.test:550 no PTR\n", 0};
    const char *r1[] = {"a@x.test=550~no from 10.2.3.4", 0};
    const char *r2[] = {"a@x.test=0", 0};
    const char *r3[] = {"a@x.test=550~prohibited from your location (UNKNOWN@UNKNOWN ip=203.0.113.1)", 0};
    const char *r4[] = {"a%b@x.test=551~I don't allow relaying to a%b@x.test", 0};
    const char *r5[] = {"a@strict.test=550~no PTR", 0};
    evalcase("obtuse cidr list", sets, "10.2.3.4", "h", "a@b.test", r1, 0);
    evalcase("obtuse EXCEPT", sets, "10.1.3.4", "h", "a@b.test", r2, 0);
    evalcase("obtuse address pattern and default text", sets, "203.0.113.1", "h", "a@obtuse.test", r3, 0);
    evalcase("obtuse percent hack", sets, "203.0.113.1", "h", "a@b.test", r4, 0);
    evalcase("obtuse UNKNOWN source", sets, "203.0.113.1", "h", "a@b.test", r5, 0);
  }
  {
    const char *sets[] = {"G|deny if from=*@x.test \"550 5.7.1 from %F\"\n", 0};
    const char *r1[] = {"a@y.test=550~from a?b@x.test", 0};
    evalcase("client bytes in texts made printable", sets, "203.0.113.1", "h", "a\rb@x.test", r1, 0);
  }
  {
    const char *sets[] = {"G|deny if from=*@never.test\n", "Dbroken.test|deny if from=*@x\nERROR\n", 0};
    const char *r1[] = {"a@broken.test=451", "a@fine.test=0", 0};
    evalcase("a broken set answers 451 for its recipients", sets, "203.0.113.1", "h", "a@b.test", r1, 0);
  }
  {
    const char *r1[] = {"a@x.test=0", 0};
    evalcase("no rules cdb: no opinion", 0, "203.0.113.1", "h", "a@b.test", r1, 0);
  }
  {
    char c[400];
    int fd;
    const char *r1[] = {"a@x.test=451", 0};
    snprintf(c, sizeof c, "%s/damaged", check_dir);
    mkdir(c, 0755);
    snprintf(c, sizeof c, "%s/damaged/control", check_dir);
    mkdir(c, 0755);
    snprintf(c, sizeof c, "%s/damaged/control/rules.cdb", check_dir);
    fd = open(c, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (write(fd, "not a cdb at all", 16) != 16) return;
    close(fd);
    evalcase("damaged", 0, "203.0.113.1", "h", "a@b.test", r1, 0);
  }
}

/* group_cases - a run of 200 rules on one fact becomes one rule; every value still answers
 * with its own rule's origin */
static void group_cases(void)
{
  stralloc src = {0}, sets[2] = {{0}, {0}}, dump = {0};
  const char *err;
  char line[200], origin[32];
  int i, bad = 0;
  for (i = 0; i < 200; ++i) {
    snprintf(line, sizeof line, i % 2 ? "deny if ip=10.%d.0.0/16" : "deny if ip=10.%d.0.0/16,192.168.%d.0/24", i, i);
    snprintf(origin, sizeof origin, "r:%d", i + 1);
    if (rules_parse_line(sets, line, origin, RS_DEFAULT, &err)) bad = 1;
  }
  rules_parse_line(sets, "deny if from=*@x.test", "r:201", RS_DEFAULT, &err);
  src = sets[1];
  {
    size_t before = sets[1].len;
    stralloc copy = {0};
    stralloc_copy(&copy, &sets[1]);
    if (rules_optimize(&copy) == -1) bad = 1;
    rules_dump(&dump, copy.s, copy.len);
    stralloc_0(&dump);
    check(!bad && copy.len < before && strstr(dump.s, "r:201: deny from=*@x.test") &&
          strstr(dump.s, "r:200: deny ip=10.199.0.0/16\nr:201") && strstr(dump.s, "r:1: deny ip=192.168.0.0/24\n"),
          "grouping merges a run of rules, show lists each", "%zu -> %zu: %.200s", before, copy.len, dump.s);
  }
  (void)src;
}

int main(void)
{
  check_tmpdir("rules");
  glob_cases();
  regex_oracle();
  regex_random();
  regex_budget();
  cidr_cases();
  parser_cases();
  eval_cases();
  setenv("T_OPTIMIZE", "1", 1);  /* the same answers from the optimised sets */
  eval_cases();
  group_cases();
  return check_done();
}
