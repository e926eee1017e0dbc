/* t_dynptr - the shipped control/dynamicptr: every pattern compiles with
 * regcomp(REG_EXTENDED|REG_ICASE|REG_NOSUB) and keeps to the subset the rules engine's matcher
 * implements (literals . [set] [^set] * + ? {m} {m,n} | ( ) ^ $ \. \-); there are at least 200;
 * every name of tests/dynptr.dynamic (home DSL/cable/dial-up/mobile names, at least 60)
 * matches one, and no name of tests/dynptr.static (mail servers, static and hosting names, at
 * least 40) matches any. Run from tests/ (the suite does). */
#include <ctype.h>
#include <regex.h>
#include "check.h"

#define MAXPAT 2000

static regex_t re[MAXPAT];
static char *src[MAXPAT];
static int lineno[MAXPAT];
static int npat;

/* subset - why pattern p leaves the matcher's subset, or 0 when it keeps to it */
static const char *subset(const char *p)
{
  size_t i, n = strlen(p);
  for (i = 0; i < n; ++i) {
    char c = p[i];
    if ((unsigned char)c < 33 || (unsigned char)c > 126) return "space or non-ASCII byte";
    if (c == '\\') {
      if (p[i + 1] != '.' && p[i + 1] != '-') return "escape other than \\. or \\-";
      ++i;
    } else if (c == '[') {
      if (p[++i] == '^') ++i;
      if (p[i] == ']') return "] first in a set";
      for (; i < n && p[i] != ']'; ++i)
        if (p[i] == '[' || p[i] == '\\') return "[ or \\ inside a set ([:class:], escapes)";
      if (i == n) return "unterminated set";
    } else if (c == '{') {
      size_t j = i + 1;
      while (isdigit((unsigned char)p[j])) ++j;
      if (j == i + 1) return "{ without a count";
      if (p[j] == ',') {
        size_t k = ++j;
        while (isdigit((unsigned char)p[j])) ++j;
        if (j == k) return "{m,} (open count): write {m,n}";
      }
      if (p[j] != '}') return "malformed {m,n}";
      i = j;
    } else if (c == '^') {
      if (i && p[i - 1] != '(' && p[i - 1] != '|') return "^ not at the start of a branch";
    } else if (c == '$') {
      if (p[i + 1] && p[i + 1] != ')' && p[i + 1] != '|') return "$ not at the end of a branch";
    } else if (c == ']' || c == '}') {
      return "stray ] or }";
    }
  }
  return 0;
}

/* load - compile every pattern line of the file */
static void load(const char *fn)
{
  size_t len;
  char *s = check_readfile(fn, &len), *line, *next, n[600];
  int no = 0, bad = 0, e;
  if (!check(s != 0, "read control/dynamicptr", "%s: %s", fn, strerror(errno))) return;
  for (line = s; line && *line; line = next) {
    const char *why;
    ++no;
    if ((next = strchr(line, '\n'))) *next++ = 0;
    if (!*line || *line == '#') continue;
    if (npat == MAXPAT) { check(0, "dynamicptr size", "more than %d patterns", MAXPAT); break; }
    if ((why = subset(line))) {
      snprintf(n, sizeof n, "dynamicptr:%d subset", no);
      check(0, n, "%s: %s", why, line);
      ++bad;
    }
    if ((e = regcomp(&re[npat], line, REG_EXTENDED | REG_ICASE | REG_NOSUB))) {
      char msg[200];
      regerror(e, &re[npat], msg, sizeof msg);
      snprintf(n, sizeof n, "dynamicptr:%d regcomp", no);
      check(0, n, "%s: %s", msg, line);
      ++bad;
      continue;
    }
    src[npat] = line;
    lineno[npat++] = no;
  }
  check(bad == 0 && npat > 0, "dynamicptr: every pattern compiles and keeps to the subset",
        "%d bad", bad);
  check(npat >= 200, "dynamicptr: at least 200 patterns", "%d", npat);
}

/* first - the index of the first pattern matching name, or -1 */
static int first(const char *name)
{
  int i;
  for (i = 0; i < npat; ++i)
    if (regexec(&re[i], name, 0, 0, 0) == 0) return i;
  return -1;
}

/* corpus - every name of fn matches (want 1) or none does (want 0); the number of names */
static int corpus(const char *fn, int want, int *hits)
{
  size_t len;
  char *s = check_readfile(fn, &len), *line, *next, n[300];
  int count = 0, i;
  if (!check(s != 0, fn, "cannot read: %s", strerror(errno))) return 0;
  for (line = s; line && *line; line = next) {
    if ((next = strchr(line, '\n'))) *next++ = 0;
    if (!*line || *line == '#') continue;
    ++count;
    i = first(line);
    snprintf(n, sizeof n, "%s %s", want ? "dynamic" : "not dynamic", line);
    if (want) {
      check(i >= 0, n, "no pattern matches");
      for (i = 0; i < npat; ++i) if (regexec(&re[i], line, 0, 0, 0) == 0) ++hits[i];
    } else {
      check(i < 0, n, "dynamicptr:%d matches: %s", i >= 0 ? lineno[i] : 0, i >= 0 ? src[i] : "");
    }
  }
  return count;
}

int main(void)
{
  static int hits[MAXPAT];
  int nd, ns, i, unused = 0;
  load("../control/dynamicptr");
  if (!npat) return check_done();
  nd = corpus("dynptr.dynamic", 1, hits);
  ns = corpus("dynptr.static", 0, hits);
  check(nd >= 60, "dynamic corpus: at least 60 names", "%d", nd);
  check(ns >= 40, "static corpus: at least 40 names", "%d", ns);
  for (i = 0; i < npat; ++i) unused += !hits[i];
  printf("# dynamicptr: %d patterns, %d dynamic and %d static names; %d patterns match no "
         "dynamic name of the corpus\n", npat, nd, ns, unused);
  return check_done();
}
