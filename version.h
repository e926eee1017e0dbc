/* version.h - the release, from the VERSION file (first line) through the Makefile */
#ifndef VERSION_H
#define VERSION_H
extern const char mxguard_version[];
/* version_arg - 1 when arg is -V or --version */
int version_arg(const char *arg);
/* version_print - "prog VERSION\n" on stdout; exit 0 */
void version_print(const char *prog);
#endif
