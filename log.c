/* log.c - writes one key=value line per event to fd 2 for multilog/svlogd, which add the
 * timestamp. Every line starts "pid=N event=NAME" so interleaved sessions separate. Values
 * that come from the client are cut to LOG_VALUE_MAX bytes, bytes outside printable ASCII
 * and the characters \ " = become \xNN, and the value is quoted when it holds a space, so a
 * client can never forge or split a log line. LOGLEVEL (qmail-ldap's name) picks how much
 * is written; a write error on fd 2 is ignored: logging never stops the mail. */
#include <buffer.h>
#include <fmt.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include "log.h"

int log_level = LOG_INFO;
static char logbuf[1024];
static buffer b = BUFFER_INIT(write, 2, logbuf, sizeof logbuf);
static char pidstr[FMT_ULONG + 1];

void log_init(void)
{
  const char *x = getenv("LOGLEVEL");
  pidstr[fmt_ulong(pidstr, (unsigned long)getpid())] = 0;
  if (x && *x >= '0' && *x <= '9') log_level = *x - '0';
}

int log_on(int level) { return log_level >= level; }

void log_start(const char *event)
{
  buffer_puts(&b, "pid=");
  buffer_puts(&b, pidstr);
  buffer_puts(&b, " event=");
  buffer_puts(&b, event);
}

void log_str(const char *key, const char *value)
{
  if (value[strcspn(value, " \\\"=")]) log_client(key, value, strlen(value));
  else buffer_putm(&b, " ", key, "=", value);
}

static void put_escaped(const char *s, size_t len)
{
  static const char hex[] = "0123456789abcdef";
  size_t i;
  for (i = 0; i < len; ++i) {
    unsigned char c = (unsigned char)s[i];
    if (c < 33 || c > 126 || c == '\\' || c == '"' || c == '=') {
      char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
      if (c == ' ') buffer_put(&b, " ", 1);
      else buffer_put(&b, e, 4);
    } else
      buffer_put(&b, (const char *)&c, 1);
  }
}

void log_client(const char *key, const char *s, size_t len)
{
  size_t i;
  int quote = 0;
  if (len > LOG_VALUE_MAX) len = LOG_VALUE_MAX;
  for (i = 0; i < len; ++i)
    if (s[i] == ' ') quote = 1;
  buffer_putm(&b, " ", key, quote ? "=\"" : "=");
  put_escaped(s, len);
  if (quote) buffer_put(&b, "\"", 1);
}

void log_clients(const char *key, const char *s) { log_client(key, s, s ? strlen(s) : 0); }

void log_addr(const char *key, const char *s)
{
  size_t len = strlen(s), i;
  int quote = 0;
  if (len > LOG_VALUE_MAX) len = LOG_VALUE_MAX;
  for (i = 0; i < len; ++i)
    if (s[i] == ' ') quote = 1;
  buffer_putm(&b, " ", key, quote ? "=\"<" : "=<");
  put_escaped(s, len);
  buffer_puts(&b, quote ? ">\"" : ">");
}

void log_ulong(const char *key, unsigned long u)
{
  char num[FMT_ULONG];
  buffer_putm(&b, " ", key, "=");
  buffer_put(&b, num, fmt_ulong(num, u));
}

void log_end(void)
{
  buffer_put(&b, "\n", 1);
  buffer_flush(&b);
}
