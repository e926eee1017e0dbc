/* valsql.h - vpopmail's MySQL tables through libmariadb, loaded with dlopen on first use */
#ifndef VALSQL_H
#define VALSQL_H

#define VALSQL_LIB "libmariadb.so.3"
#define VALSQL_CONNECT_TIMEOUT 3  /* seconds */
#define VALSQL_QUERY_TIMEOUT 5    /* seconds, each of read and write */

/* valsql_configured - is the settings file there: 1, 0, -1 unreadable */
int valsql_configured(const char *conffile);

/* valsql_user - user@domain in the vpopmail table (many-domains layout) or the domain's own
 * table (one table per domain): 1 found (*gid = pw_gid), 0 absent, -1 temporary failure */
int valsql_user(const char *user, const char *domain, long *gid);

/* valsql_valias - a valias row for user, or for one of its PREFIX-default names: 1, 0, -1 */
int valsql_valias(const char *user, const char *domain);

/* valsql_names - every user name of domain (for mxguard-users): each passed to fn; 0 or -1 */
int valsql_names(const char *domain, void (*fn)(const char *name, void *ctx), void *ctx);

/* valsql_rules - the rows of the table mxguard_rules (scope, rules) for mxguard-rules: scope
 * is a domain or user@domain, rules its lines; a missing table is no rows. 0 or -1 */
int valsql_rules(void (*fn)(const char *scope, const char *text, void *ctx), void *ctx);

const char *valsql_error(void);  /* why the last call gave -1 */
int valsql_loaded(void);         /* was the library loaded in this process */
void valsql_reset(void);         /* close the connection, forget the settings */
#endif
