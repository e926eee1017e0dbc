/* instruct.h - ipsvd-style per-client instructions from a cdb */
#ifndef INSTRUCT_H
#define INSTRUCT_H
#include <stralloc.h>

#define INSTRUCT_DEFAULT "control/instruct.cdb"
#define INSTRUCT_VALUE_MAX 65536  /* a bigger value is treated as broken */

enum { INSTRUCT_NONE = 0, INSTRUCT_ALLOW = 1, INSTRUCT_DENY = 2, INSTRUCT_EXEC = 3,
       INSTRUCT_ERROR = -1 };

/* instruct_path - $INSTRUCTCDB, else control/instruct.cdb; "" when switched off */
const char *instruct_path(void);

/* instruct_apply - find the entry for ip (and host, may be 0) in the cdb at path, apply its
 * I lines to the environment. NONE: no cdb or no entry; ALLOW: I entry applied; DENY: D;
 * EXEC: X, the command is in cmd; ERROR: unreadable or broken cdb (421). *key is set to the
 * key that matched. Each ignored line is reported through warn(). */
int instruct_apply(const char *path, const char *ip, const char *host, stralloc *cmd,
                   const char **key, void (*warn)(const char *why, const char *line));
/* instruct_get - the value of the entry for ip (and host) without applying it: the type as
 * instruct_apply, the value without its type byte in v (NUL-terminated; I lines separated by
 * NUL, the command for EXEC) */
int instruct_get(const char *path, const char *ip, const char *host, stralloc *v, const char **key);
/* instruct_lines - walks the I lines of v: set(arg, NAME, VALUE) for "+NAME=VALUE", set(arg,
 * NAME, 0) for "+NAME", other(arg, line) for C, = and unknown lines (mxguard-front uses this
 * for its children's environment) */
void instruct_lines(char *v, size_t len, void (*set)(void *arg, const char *name, const char *value),
                    void (*other)(void *arg, const char *line), void *arg);
#endif
