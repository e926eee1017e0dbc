/* log.c - writes one key=value line per event to fd 2 for multilog/svlogd, which add the
 * timestamp. Every line starts "pid=N event=NAME" so interleaved sessions separate. Values
 * that come from the client are cut to LOG_VALUE_MAX bytes, bytes outside printable ASCII
 * and the characters \ " = become \xNN, and the value is quoted when it holds a space, so a
 * client can never forge or split a log line. LOGLEVEL (qmail-ldap's name) picks how much
 * is written; a write error on fd 2 is ignored: logging never stops the mail.
 * Each line is built whole in memory and written with one write() of at most LOG_LINE_MAX
 * bytes (under PIPE_BUF), so lines of concurrent sessions never interleave in a pipe or an
 * O_APPEND file. A field that does not fit is cut (a client value at an escape boundary, its
 * quote closed) and the line ends with trunc=1; later fields are left out. */
#include <errno.h>
#include <fmt.h>
#include <limits.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include "log.h"

#define TRUNC_MARK " trunc=1"
/* room kept at the end of a line for a closing quote, TRUNC_MARK and the LF */
#define LOG_RESERVE (4 + sizeof TRUNC_MARK)
#if LOG_LINE_MAX > PIPE_BUF
#error "a log line must fit in one atomic pipe write"
#endif

int log_level = LOG_INFO;
static char line[LOG_LINE_MAX];
static size_t len;
static int cut;
static char pidstr[FMT_ULONG + 1];

void log_init(void)
{
  const char *x = getenv("LOGLEVEL");
  pidstr[fmt_ulong(pidstr, (unsigned long)getpid())] = 0;
  if (x && *x >= '0' && *x <= '9') log_level = *x - '0';
}

int log_on(int level) { return log_level >= level; }

/* fits - n more bytes fit before the reserve; once a field was cut nothing more does */
static int fits(size_t n) { return !cut && n <= sizeof line - LOG_RESERVE - len; }

static void add(const char *s, size_t n)
{
  memcpy(line + len, s, n);
  len += n;
}

static void adds(const char *s) { add(s, strlen(s)); }

/* field_start - " key=" (with a quote when asked), or the cut when not even that fits */
static int field_start(const char *key, const char *open)
{
  if (!fits(1 + strlen(key) + 1 + strlen(open) + 1)) { cut = 1; return 0; }
  add(" ", 1);
  adds(key);
  add("=", 1);
  adds(open);
  return 1;
}

void log_start(const char *event)
{
  len = 0;
  cut = 0;
  adds("pid=");
  adds(pidstr);
  adds(" event=");
  add(event, strlen(event) > 64 ? 64 : strlen(event));
}

/* put_escaped - the value, escaped, as far as it fits; 0 when it was cut */
static int put_escaped(const char *s, size_t n)
{
  static const char hex[] = "0123456789abcdef";
  size_t i;
  for (i = 0; i < n; ++i) {
    unsigned char c = (unsigned char)s[i];
    if (c != ' ' && (c < 33 || c > 126 || c == '\\' || c == '"' || c == '=')) {
      char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
      if (!fits(4)) break;
      add(e, 4);
    } else {
      if (!fits(1)) break;
      add((const char *)&c, 1);
    }
  }
  if (i < n) cut = 1;
  return i == n;
}

void log_str(const char *key, const char *value)
{
  size_t n = strlen(value);
  if (value[strcspn(value, " \\\"=")]) { log_client(key, value, n); return; }
  if (!fits(1 + strlen(key) + 1 + n)) { cut = 1; return; }
  add(" ", 1);
  adds(key);
  add("=", 1);
  add(value, n);
}

static void put_value(const char *key, const char *s, size_t n, const char *pre, const char *post)
{
  size_t i;
  int quote = 0;
  if (n > LOG_VALUE_MAX) n = LOG_VALUE_MAX;
  for (i = 0; i < n; ++i)
    if (s[i] == ' ') quote = 1;
  if (!field_start(key, quote ? "\"" : "")) return;
  adds(pre);  /* the reserve holds the short pre and post */
  put_escaped(s, n);
  adds(post);
  if (quote) add("\"", 1);
}

void log_client(const char *key, const char *s, size_t n) { put_value(key, s, n, "", ""); }

void log_clients(const char *key, const char *s) { log_client(key, s, s ? strlen(s) : 0); }

void log_addr(const char *key, const char *s) { put_value(key, s, strlen(s), "<", ">"); }

void log_ulong(const char *key, unsigned long u)
{
  char num[FMT_ULONG];
  size_t n = fmt_ulong(num, u);
  if (!fits(1 + strlen(key) + 1 + n)) { cut = 1; return; }
  add(" ", 1);
  adds(key);
  add("=", 1);
  add(num, n);
}

/* log_end - the line in one write(); a short or failed write is not retried: a second write
 * could land inside another process's line */
void log_end(void)
{
  ssize_t w;
  if (cut) adds(TRUNC_MARK);
  add("\n", 1);
  do w = write(2, line, len); while (w == -1 && errno == EINTR);
  len = 0;
  cut = 0;
}
