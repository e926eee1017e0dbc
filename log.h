/* log.h - one key=value line per event on stderr (fd 2) */
#ifndef LOG_H
#define LOG_H
#include <stddef.h>

/* LOGLEVEL: 0 nothing, 1 errors, 2 (default) sessions, rejects and messages,
 * 3 every reply, 4 every command received as well */
enum { LOG_ERROR = 1, LOG_INFO = 2, LOG_REPLY = 3, LOG_DEBUG = 4 };
#define LOG_VALUE_MAX 200  /* client strings are cut to this many bytes */
#define LOG_LINE_MAX 4000  /* a whole line with its LF, under PIPE_BUF (4096 on Linux, 512 POSIX) */

extern int log_level;
void log_init(void);
int log_on(int level);
void log_start(const char *event);
void log_str(const char *key, const char *value);           /* our own value */
void log_client(const char *key, const char *s, size_t len); /* escaped, quoted, cut */
void log_clients(const char *key, const char *s);
void log_addr(const char *key, const char *s);               /* as <addr>, escaped */
void log_ulong(const char *key, unsigned long u);
void log_end(void);
#endif
