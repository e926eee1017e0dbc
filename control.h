/* control.h - qmail control files and the qmail home */
#ifndef CONTROL_H
#define CONTROL_H
#include <stddef.h>
#include <stralloc.h>

const char *control_home(void);  /* $QMAILHOME, else the compiled-in home */
int control_chdir(void);         /* 0, or -1 with errno */

/* tri-state readers, as qmail's: 1 read, 0 absent (ENOENT), -1 error */
int control_readline(stralloc *sa, const char *fn);
int control_readint(int *i, const char *fn);
int control_readfile(stralloc *sa, const char *fn);  /* entries, each NUL-terminated */
unsigned long control_scanulong(const char *s, size_t *used); /* qmail's scan_ulong: wraps */

/* control_cdbcheck - is the cdb open on fd whole: at least the 2048-byte header, every hash
 * table inside the file after the header. 0, or -1 (errno EPROTO when damaged) */
int control_cdbcheck(int fd);

/* cmap - a case-insensitive set of the entries of a control file (qmail's constmap).
 * The hash table is built on the first lookup, not at load. */
struct cmap {
  stralloc sa;        /* entries, NUL-terminated */
  unsigned *slot;     /* offset+1 of an entry in sa, 0 = empty */
  unsigned mask;
  int built;
};
int cmap_load(struct cmap *m, const char *fn);  /* as control_readfile */
int cmap_has(struct cmap *m, const char *s, size_t len);  /* 1, 0; -1 out of memory */
#endif
