/* qq-maildir.c - a qmail-queue for the demo: speaks qmail-queue's protocol to mxguard-smtpd
 * (the message on fd 0, read to EOF first; then the envelope on fd 1: "F" sender NUL, "T"
 * recipient NUL for each recipient, one more NUL, EOF) and, instead of queueing, delivers the
 * message into the Maildir named by $MAILDIR. Each recipient gets its own copy, headed by
 * "Return-Path: <sender>" and "Delivered-To: recipient" as qmail-local writes them. Delivery
 * follows the Maildir spec: write tmp/NAME, fsync, link it to new/NAME (rename where the file
 * system has no links), unlink tmp/NAME; NAME is time.MusecPpidQn.host, n counting the files made.
 * The envelope is checked strictly: a missing "F", a record not starting with "T", no
 * recipient at all (qmail-queue would queue that; here it is a bug in the caller) or bytes
 * after the final NUL are 91. Nothing reaches new/ before the envelope is complete, and if one
 * copy cannot be linked the copies already in new/ are removed, so a message the client sends
 * again is never delivered twice. Exit codes are qmail-queue's, so mxguard answers as it would
 * for the real one: 0 delivered, 11 address over 1002 bytes, 51 out of memory, 52 running for
 * a day, 53 write error or disk full, 54 read error or the envelope ended early, 61 $MAILDIR
 * unset or not a maildir, 91 bad envelope. One log line per copy or error goes to fd 2. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <buffer.h>
#include <fmt.h>
#include <stralloc.h>

#define ADDR_MAX 1003  /* qmail-queue's ADDR: an address of this many bytes is exit 11 */
#define TRIES 3        /* Maildir spec: if the name exists, sleep 2 seconds and try again */
#define DEATH 86400    /* qmail-queue's DEATH: give up after a day */

static stralloc sender, rcpts;  /* rcpts: every recipient, NUL-terminated */
static stralloc names;          /* the NAME of every copy made in tmp/, NUL-terminated */
static stralloc path, host;
static unsigned ncopies, nlinked;
static int spool = -1;          /* the message as read from fd 0, unlinked */
static char inspace[8192], envspace[1024], outspace[8192];
static int werr;                /* errno of the first failed write */

static void logs(const char *s) { buffer_puts(buffer_2, s); }

static void lognum(unsigned long u)
{
  char num[FMT_ULONG];
  size_t n = fmt_ulong(num, u);
  buffer_put(buffer_2, num, n);
}

static void logstart(const char *event)
{
  logs("qq-maildir: pid=");
  lognum((unsigned long)getpid());
  logs(" event=");
  logs(event);
}

/* name_at - the i-th NAME in names */
static const char *name_at(unsigned i)
{
  const char *s = names.s;
  while (i--) s += strlen(s) + 1;
  return s;
}

static const char *in(const char *dir, const char *name)
{
  if (!stralloc_copys(&path, dir) || !stralloc_cats(&path, name) || !stralloc_0(&path))
    _exit(51);
  return path.s;
}

/* undo - remove whatever this delivery left in tmp/ and new/ */
static void undo(void)
{
  unsigned i;
  for (i = 0; i < ncopies; ++i) {
    unlink(in("tmp/", name_at(i)));
    if (i < nlinked) unlink(in("new/", name_at(i)));
  }
}

static void logexit(int code, const char *op)
{
  logstart("error");
  logs(" exit=");
  lognum((unsigned long)code);
  logs(" op=");
  logs(op);
}

static void quit(int code)
{
  logs("\n");
  buffer_flush(buffer_2);
  undo();
  _exit(code);
}

/* die - log why, take back the partial delivery, exit with qmail-queue's code */
static void die(int code, const char *op, const char *file, int err)
{
  logexit(code, op);
  if (file) { logs(" file="); logs(file); }
  if (err) { logs(" error=\""); logs(strerror(err)); logs("\""); }
  quit(code);
}

/* badenv - the envelope broke the protocol: 91, or 54 when it ended early, 11 too long */
static void badenv(int code, const char *reason)
{
  logexit(code, "envelope");
  logs(" reason=");
  logs(reason);
  quit(code);
}

static void die_nomem(void) { die(51, "alloc", 0, ENOMEM); }

/* die_write - 53 for a full or failing disk */
static void die_write(const char *op, const char *file) { die(53, op, file, errno); }

/* die_create - 53 when the disk is full, else the maildir is unusable: 61 */
static void die_create(const char *op, const char *file)
{
  int e = errno;
  die(e == ENOSPC || e == EDQUOT || e == EIO ? 53 : 61, op, file, e);
}

static void sigalrm(int sig) { (void)sig; _exit(52); }

/* hostname - gethostname() with "/" and ":" written as \057 and \072, as the spec says */
static void hostname(void)
{
  char h[256];
  size_t i;
  if (gethostname(h, sizeof h - 1) == -1) h[0] = 0;
  h[sizeof h - 1] = 0;
  if (!h[0]) strcpy(h, "localhost");
  for (i = 0; h[i]; ++i) {
    const char *x = h[i] == '/' ? "\\057" : h[i] == ':' ? "\\072" : 0;
    if (!(x ? stralloc_cats(&host, x) : stralloc_append(&host, h + i))) die_nomem();
  }
}

/* maildir - chdir to $MAILDIR and make sure tmp/, new/ and cur/ are directories */
static void maildir(void)
{
  static const char *const sub[] = {"tmp", "new", "cur"};
  const char *dir = getenv("MAILDIR");
  struct stat st;
  size_t i;
  if (!dir || !*dir) die(61, "getenv", "MAILDIR", 0);
  if (chdir(dir) == -1) die(61, "chdir", dir, errno);
  for (i = 0; i < 3; ++i) {
    if (stat(sub[i], &st) == -1) die(61, "stat", sub[i], errno);
    if (!S_ISDIR(st.st_mode)) die(61, "stat", sub[i], ENOTDIR);
  }
}

/* uniq - a new NAME: time.MusecPpidQn.host */
static void uniq(stralloc *sa)
{
  static unsigned long q;
  char num[FMT_ULONG];
  struct timeval tv;
  gettimeofday(&tv, 0);
  if (!stralloc_copyb(sa, num, fmt_ulong(num, (unsigned long)tv.tv_sec)) ||
      !stralloc_cats(sa, ".M") ||
      !stralloc_catb(sa, num, fmt_ulong(num, (unsigned long)tv.tv_usec)) ||
      !stralloc_cats(sa, "P") ||
      !stralloc_catb(sa, num, fmt_ulong(num, (unsigned long)getpid())) ||
      !stralloc_cats(sa, "Q") ||
      !stralloc_catb(sa, num, fmt_ulong(num, ++q)) ||
      !stralloc_cats(sa, ".") || !stralloc_cat(sa, &host) || !stralloc_0(sa))
    die_nomem();
}

/* create - a new file in tmp/, its NAME appended to names; the fd */
static int create(void)
{
  static stralloc name;
  int fd, i;
  for (i = 0; ; ++i) {
    uniq(&name);
    fd = open(in("tmp/", name.s), O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd != -1) break;
    if (errno != EEXIST || i + 1 == TRIES) die_create("create", path.s);
    sleep(2);
  }
  if (!stralloc_cat(&names, &name)) { unlink(path.s); die_nomem(); }
  ++ncopies;
  return fd;
}

/* safewrite - the op of every output buffer. It remembers a failure in werr because
 * libowfat 0.32's buffer_flush() returns 0 after a failed write (buffer_stubborn returns an
 * int -1 that buffer_flush reads as a positive ssize_t), and buffer_put() flushes through it. */
static ssize_t safewrite(int fd, const char *buf, size_t len)
{
  ssize_t w = write(fd, buf, len);
  if (w == -1 && errno != EINTR && !werr) werr = errno;
  if (w == 0 && !werr) werr = EIO;
  return w;
}

/* put, flush - output to file; 53 when a write failed */
static void put(buffer *b, const char *s, size_t len, const char *file)
{
  buffer_put(b, s, len);
  if (werr) { errno = werr; die_write("write", file); }
}

static void flush(buffer *b, const char *file)
{
  buffer_flush(b);
  if (werr) { errno = werr; die_write("write", file); }
}

static void puts0(buffer *b, const char *s, const char *file) { put(b, s, strlen(s), file); }

/* readmsg - fd 0 to EOF into the spool, an unlinked file in tmp/ */
static void readmsg(void)
{
  buffer msg = BUFFER_INIT(read, 0, inspace, sizeof inspace);
  buffer out = BUFFER_INIT(safewrite, -1, outspace, sizeof outspace);
  out.fd = spool = create();
  unlink(in("tmp/", name_at(0)));
  names.len = 0;
  ncopies = 0;
  for (;;) {
    ssize_t n = buffer_feed(&msg);
    if (n == 0) break;
    if (n < 0) die(54, "read", "message", errno);
    put(&out, buffer_peek(&msg), (size_t)n, "spool");
    buffer_seek(&msg, (size_t)n);
  }
  flush(&out, "spool");
}

static char getch(buffer *b)
{
  char ch;
  ssize_t r = buffer_getc(b, &ch);
  if (r == 1) return ch;
  if (r) die(54, "read", "envelope", errno);
  badenv(54, "truncated");
  return 0;
}

/* getaddr - one address, up to its NUL, appended to sa with the NUL */
static void getaddr(buffer *b, stralloc *sa)
{
  size_t len;
  for (len = 0; ; ++len) {
    char ch = getch(b);
    if (len == ADDR_MAX) badenv(11, "address_too_long");
    if (!stralloc_append(sa, &ch)) die_nomem();
    if (!ch) return;
  }
}

/* readenv - fd 1: F sender NUL, (T rcpt NUL)+, NUL, EOF; anything else is 91 */
static void readenv(void)
{
  buffer env = BUFFER_INIT(read, 1, envspace, sizeof envspace);
  unsigned n = 0;
  char ch;
  ssize_t r;
  if (getch(&env) != 'F') badenv(91, "no_sender");
  getaddr(&env, &sender);
  while ((ch = getch(&env))) {
    if (ch != 'T') badenv(91, "not_a_recipient");
    getaddr(&env, &rcpts);
    ++n;
  }
  if (!n) badenv(91, "no_recipient");
  r = buffer_getc(&env, &ch);
  if (r == -1) die(54, "read", "envelope", errno);
  if (r) badenv(91, "trailing_bytes");
}

/* copy - one recipient's copy in tmp/: the two header lines, the spool, fsync */
static void copy(const char *rcpt)
{
  static stralloc tmp;
  buffer out = BUFFER_INIT(safewrite, -1, outspace, sizeof outspace);
  out.fd = create();
  if (!stralloc_copys(&tmp, path.s) || !stralloc_0(&tmp)) die_nomem();
  puts0(&out, "Return-Path: <", tmp.s);
  puts0(&out, sender.s, tmp.s);
  puts0(&out, ">\nDelivered-To: ", tmp.s);
  puts0(&out, rcpt, tmp.s);
  puts0(&out, "\n", tmp.s);
  if (lseek(spool, 0, SEEK_SET) == -1) die(54, "lseek", "spool", errno);
  for (;;) {
    ssize_t n = read(spool, inspace, sizeof inspace);
    if (n == 0) break;
    if (n == -1) {
      if (errno == EINTR) continue;
      die(54, "read", "spool", errno);
    }
    put(&out, inspace, (size_t)n, tmp.s);
  }
  flush(&out, tmp.s);
  if (fsync(out.fd) == -1 || close(out.fd) == -1) die_write("fsync", tmp.s);
}

/* publish - tmp/NAME to new/NAME for every copy, then the directory entry to disk */
static void publish(void)
{
  static stralloc tmp;
  unsigned i;
  int fd;
  for (i = 0; i < ncopies; ++i) {
    const char *name = name_at(i);
    if (!stralloc_copys(&tmp, in("tmp/", name)) || !stralloc_0(&tmp)) die_nomem();
    if (link(tmp.s, in("new/", name)) == -1 &&
        !((errno == EPERM || errno == ENOSYS || errno == EXDEV) && rename(tmp.s, path.s) == 0))
      die_create("link", path.s);
    ++nlinked;
  }
  fd = open("new", O_RDONLY);
  if (fd == -1 || (fsync(fd) == -1 && errno != EINVAL)) die_write("fsync", "new");
  close(fd);
  for (i = 0; i < ncopies; ++i) {
    unlink(in("tmp/", name_at(i)));
    logstart("deliver");
    logs(" file=");
    logs(in("new/", name_at(i)));
    logs("\n");
  }
  buffer_flush(buffer_2);
}

int main(void)
{
  const char *r;
  signal(SIGALRM, sigalrm);
  alarm(DEATH);
  umask(077);
  maildir();
  hostname();
  readmsg();
  readenv();
  for (r = rcpts.s; r < rcpts.s + rcpts.len; r += strlen(r) + 1) copy(r);
  publish();
  return 0;
}
