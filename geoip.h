/* geoip.h - the country of an IP address from a MaxMind/DB-IP .mmdb file (control/geoipdb),
 * through libmaxminddb loaded with dlopen on the first question that needs it */
#ifndef GEOIP_H
#define GEOIP_H

#define GEOIP_LIB "libmaxminddb.so.0"
#define GEOIP_CONTROL "control/geoipdb"

/* geoip_country - ip (v4 dotted quad or v6 text) to its ISO 3166 code: 1 found (cc = two
 * uppercase letters, NUL-terminated), 0 not in the database, no database configured or not an
 * address, -1 error (library missing, database unreadable or corrupt: the caller answers 4xx
 * or treats the country as unknown, and logs geoip_error()) */
int geoip_country(const char *ip, char cc[3]);

/* geoip_available - control/geoipdb names a database that opens: 1, else 0 (geoip_error says
 * why: not configured, or the open failed). Loads the library and opens the database. */
int geoip_available(void);

const char *geoip_error(void);  /* why the last call gave -1 (or geoip_available 0) */
int geoip_loaded(void);         /* was the library loaded in this process */
void geoip_reset(void);         /* close the database and forget control/geoipdb (tests) */
#endif
