/* pattern.h - the matchers of the rules engine: globs, a small regular-expression machine,
 * and CIDR ranges. Patterns are compiled once (by mxguard-rules compile) into position-free
 * bytes that the daemon runs without any set-up: a session pays only for the patterns a
 * fact reaches. Everything is case-insensitive: subjects are lowercased by the caller,
 * patterns at compile time. */
#ifndef PATTERN_H
#define PATTERN_H
#include <stddef.h>
#include <stralloc.h>

/* pat_glob - glob with * (any run) and ? (one byte); p and s NUL-terminated, lowercase */
int pat_glob(const char *p, const char *s);

/* pat_recompile - a POSIX-ERE subset into a program appended to out: literals, ., [...]
 * with ranges and [^...], * + ? {m} {m,} {m,n}, |, (...), ^, $, \ escapes (\d \w \s too).
 * The program is preceded by a prefilter: a literal every match must contain ("" if none).
 * Returns 0, or -1 with *err set (a static text) */
int pat_recompile(stralloc *out, const char *re, const char **err);

/* pat_rematch - run a compiled program (as pat_recompile wrote it, at prog) on s (lowercase,
 * NUL-terminated): 1 match, 0 no match, -1 gave up (step budget; counts as no match) */
int pat_rematch(const char *prog, const char *s);
size_t pat_relen(const char *prog);  /* bytes of the compiled program at prog */

/* a cheaper prefilter for many programs on one subject: pat_trigrams notes the subject's
 * three-byte sequences once; pat_rematch_tri skips a program whose literal's first three
 * bytes are not among them before anything else */
#define PAT_TRI_BYTES 512
void pat_trigrams(const char *s, unsigned char map[PAT_TRI_BYTES]);
int pat_rematch_tri(const char *prog, const char *s, const unsigned char map[PAT_TRI_BYTES]);
/* pat_trigram - the prefilter's trigram of a program (hash + 1), 0 when it has none */
unsigned pat_trigram(const char *prog);
static inline int pat_trigram_in(unsigned t, const unsigned char map[PAT_TRI_BYTES])
{
  return !t || (map[(t - 1) >> 3] & (1 << ((t - 1) & 7)));
}

/* CIDR: 18 bytes - family (4 or 6), prefix bits, 16 address bytes (v4 in the first 4) */
#define PAT_CIDR_LEN 18
int pat_cidr_parse(char out[PAT_CIDR_LEN], const char *text);  /* 0, or -1 */
int pat_ip_parse(char out[PAT_CIDR_LEN], const char *ip);      /* an address as a /32 or /128 */
int pat_cidr_match(const char *cidr, const char *ip);          /* both from the parsers */
#endif
