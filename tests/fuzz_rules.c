/* fuzz_rules - libFuzzer target for what mxguard-rules reads from files a web panel writes.
 * The input's first byte picks the scope (global, domain, user); the rest is split into
 * lines, each given to rules_parse_line. Invariants: a line either compiles or says why;
 * the compiled sets dump without error, rules_facts_used and rules_early walk them,
 * rules_optimize keeps them walkable and never longer, and no compiled text holds a CR or LF.
 * The same input is also a regex (pat_recompile) run on itself and on a fixed subject:
 * the program's length is what pat_relen says, and a match never reads past the subject.
 * Build: make tests/fuzz_rules (clang -fsanitize=fuzzer,address,undefined).
 * Run:   tests/fuzz_rules -max_total_time=600 tests/fuzz-corpus-rules tests/fuzz-seeds-rules */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "pattern.h"
#include "rules.h"

static void fail(const char *why)
{
  fprintf(stderr, "fuzz_rules: invariant broken: %s\n", why);
  abort();
}

static void walk(const stralloc *set)
{
  static stralloc out, e, copy;
  out.len = 0;
  if (rules_dump(&out, set->s ? set->s : "", set->len) == -1) fail("dump of a compiled set");
  if (memchr(out.s ? out.s : "", '\r', out.len)) fail("CR in a compiled rule");
  rules_facts_used(set->s ? set->s : "", set->len);
  if (rules_early(set->s ? set->s : "", set->len, &e) == -1) fail("rules_early");
  if (!stralloc_copy(&copy, set)) return;
  if (rules_optimize(&copy) == -1) fail("rules_optimize");
  if (copy.len > 2 * set->len + 64) fail("rules_optimize blew the set up");
  out.len = 0;
  if (rules_dump(&out, copy.s ? copy.s : "", copy.len) == -1) fail("dump of an optimised set");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static stralloc sets[2], line, prog;
  size_t i = 1;
  int scope;
  if (!size) return 0;
  scope = data[0] % 3 == 0 ? RS_DEFAULT : data[0] % 3 == 1 ? RS_DOMAIN : RS_USER;
  sets[0].len = sets[1].len = 0;
  while (i < size) {
    const uint8_t *nl = memchr(data + i, '\n', size - i);
    size_t n = nl ? (size_t)(nl - (data + i)) : size - i;
    const char *err = 0;
    int r;
    if (!stralloc_copyb(&line, (const char *)data + i, n) || !stralloc_0(&line)) return 0;
    i += n + 1;
    if (memchr(line.s, 0, n)) continue;  /* mxguard-rules refuses NUL bytes before parsing */
    r = rules_parse_line(sets, line.s, "f:1", scope, &err);
    if (r != 0 && (!err || !*err)) fail("an error without a reason");
    if (r == 0 && err) err = 0;
  }
  walk(&sets[0]);
  walk(&sets[1]);
  /* the input as a regex */
  if (!stralloc_copyb(&line, (const char *)data + 1, size - 1) || !stralloc_0(&line)) return 0;
  if (!memchr(line.s, 0, size - 1)) {
    const char *err;
    prog.len = 0;
    if (pat_recompile(&prog, line.s, &err) == 0) {
      char *subject = malloc(size);
      if (pat_relen(prog.s) != prog.len) fail("pat_relen differs from the program's length");
      memcpy(subject, data + 1, size - 1);
      subject[size - 1] = 0;
      pat_rematch(prog.s, subject);
      pat_rematch(prog.s, "dsl-1-2-3-4.dyn.example.net");
      free(subject);
    }
  }
  return 0;
}
