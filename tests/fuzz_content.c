/* fuzz_content - libFuzzer target for content.c's policy code over the MIME reader: every
 * MIME block on (REJECTEXEC with signatures, ATTACHBLOCK with the shipped list, ATTACHTYPES,
 * CHARSETBLOCK, HEADERBLOCK with a regex file), no scanners. The input is a message fed in
 * two chunks; the verdict must be 0 or a refusal with a printable text, and every byte given
 * to content_put must come out of the put callback unchanged and in order.
 * Build: make tests/fuzz_content.  Run: tests/fuzz_content -max_total_time=60 tests/fuzz-mime-seeds */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "content.h"
#include "log.h"
#include "rules.h"

static const char *const settings[] = {
  "REJECTEXEC=1", "ATTACHBLOCK=1", "ATTACHTYPES=application/x-msdownload,application/x-*",
  "CHARSETBLOCK=gb2312,koi8-r", "HEADERBLOCK=1", 0
};

static const char *lookup(const char *name)
{
  size_t n = strlen(name);
  int i;
  for (i = 0; settings[i]; ++i)
    if (!strncmp(settings[i], name, n) && settings[i][n] == '=') return settings[i] + n + 1;
  return 0;
}
const char *rules_get(const char *name) { return lookup(name); }
const char *rules_get_rcpt(unsigned i, const char *name) { return i ? 0 : lookup(name); }
const struct rules_setting rules_settings[] = {{0, 0}};

static unsigned char *out;
static size_t outlen, outcap;

static void put(void *ctx, const char *x, size_t len)
{
  (void)ctx;
  if (outlen + len > outcap) abort();
  memcpy(out + outlen, x, len);
  outlen += len;
}

/* setup - the control files in a scratch directory, read once by a first content_begin
 * (content.c keeps them for the process), then back to where libFuzzer keeps its corpus */
static void setup(void)
{
  static int done;
  static struct session s0;
  char dir[] = "/tmp/fuzz-content.XXXXXX", cwd[4096];
  FILE *f;
  int on;
  if (done) return;
  done = 1;
  log_level = 0;
  if (!getcwd(cwd, sizeof cwd) || !mkdtemp(dir) || chdir(dir) == -1 || mkdir("control", 0700) == -1)
    abort();
  f = fopen("control/signatures", "w");
  fputs("TVo\nTVp\nTVq\nTVr\nAB*D\n", f);
  fclose(f);
  f = fopen("control/badattach", "w");
  fputs("exe\n.scr\nwinmail.dat\n", f);
  fclose(f);
  f = fopen("control/headerblock", "w");
  fputs("Subject: ^\\[spam\\]\nX-Mailer: (mass|bulk)mail\n", f);
  fclose(f);
  s0.nrcpt = 1;
  s0.remoteip = "127.0.0.1";
  if (content_begin(&s0, &on, put, 0).code || !on) abort();
  content_end();
  unlink("control/signatures");
  unlink("control/badattach");
  unlink("control/headerblock");
  rmdir("control");
  if (chdir(cwd) == -1) abort();
  rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static struct session s;
  struct decision d;
  size_t split, i;
  int on = 0;
  if (size < 1) return 0;
  setup();
  s.nrcpt = 1;
  s.remoteip = "127.0.0.1";
  d = content_begin(&s, &on, put, 0);
  if (d.code || !on) { fprintf(stderr, "content_begin: %d %d\n", d.code, on); abort(); }
  free(out);
  outcap = size;
  out = malloc(outcap + 1);
  outlen = 0;
  split = data[0] * 131u % size;
  content_put(0, (const char *)data + 1, split ? split - 1 : 0);
  content_put(0, (const char *)data + (split ? split : 1), size - (split ? split : 1));
  d = content_check(&s);
  if (d.code && d.code != 552 && d.code != 554) abort();
  if (d.code && d.text)
    for (i = 0; d.text[i]; ++i)
      if ((unsigned char)d.text[i] < 32 || (unsigned char)d.text[i] > 126) abort();
  if (!d.code && content_release(put, 0) == -1) abort();
  content_end();
  if (outlen != size - 1 || memcmp(out, data + 1, outlen)) abort();
  return 0;
}
