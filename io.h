/* io.h - the client connection: bounded line reads, deadlines, one poll() loop */
#ifndef IO_H
#define IO_H
#include <stddef.h>
#include <sys/types.h>
#include <poll.h>
#include <buffer.h>

#define IO_INSIZE 16384    /* input buffer; DATA is streamed through it */
#define IO_OUTSIZE 4096
#define IO_WATCH_MAX 4     /* other modules' descriptor sets (DNS) */
#define IO_POLL_MAX 32     /* descriptors in one poll() */

enum { IO_LINE = 1, IO_LONG = 2, IO_EOF = 0, IO_TIMEOUT = -1, IO_ERROR = -2 };
enum { IO_DIE_WRITE = 1 };

extern buffer io_in;   /* fd 0 through netread */
extern buffer io_out;  /* fd 1 through netwrite */

/* called when a write to the client fails or times out; must not return */
extern void (*io_die)(int why);

void io_init(int fdin, int fdout);
void io_settimeout(unsigned long seconds);
long long io_now_ms(void);

/* io_getline - read one command line into line[size]: the bytes before LF, one CR before the
 * LF removed, NUL-terminated. IO_LONG: longer than size-1 bytes, discarded up to its LF. */
int io_getline(char *line, size_t size, size_t *len);

/* io_fill - make input available; returns bytes buffered (>0), IO_EOF, IO_TIMEOUT, IO_ERROR */
ssize_t io_fill(void);
void io_discard_input(void);  /* STARTTLS: forget pipelined plaintext */
size_t io_buffered(void);

/* io_wait - serve watches until ms pass; returns 1 early if the client sent input
 * (when watch_client), 0 when the time is up */
int io_wait(long ms, int watch_client);
/* io_waitfd - wait up to ms for events on fd (a scanner's socket), serving the watches:
 * 1 ready (or an error to be seen by the next read/write), 0 the time is up */
int io_waitfd(int fd, short events, long ms);

/* io_setlifetime - at at_ms (io_now_ms clock) every wait calls expired, which must not return
 * (421 and exit); io_setrate - inbound bytes per second, enforced by waiting after reads */
void io_setlifetime(long long at_ms, void (*expired)(void));
void io_setrate(unsigned long bytes_per_s);

/* descriptors other modules want served while we wait for the client */
struct io_watch {
  int (*fill)(struct pollfd *pfd, int max, void *ctx);  /* add fds, return how many */
  void (*ready)(const struct pollfd *pfd, int n, void *ctx);
  long (*timeout_ms)(void *ctx);                        /* -1: no timer of its own */
  void *ctx;
};
int io_watch_add(const struct io_watch *w);
void io_watch_del(const struct io_watch *w);

/* TLS hook: when set, reads and writes go through it. want is set to POLLIN or POLLOUT
 * when the call returns -1 with errno EAGAIN. */
struct io_tls {
  ssize_t (*read)(void *ctx, char *buf, size_t len, int *want);
  ssize_t (*write)(void *ctx, const char *buf, size_t len, int *want);
  void *ctx;
};
void io_settls(const struct io_tls *t);
/* io_handshake - call step until it returns 1 (done) or -1 (failed); while it returns 0 it
 * set *want to POLLIN or POLLOUT, and we wait for that within the read deadline.
 * 1 done, -1 failed, 0 deadline passed */
int io_handshake(int (*step)(void *ctx, int *want), void *ctx);

/* total deadlines on top of the per-read timeout. io_deadline - every wait ends by at (ms of
 * io_now_ms(); 0: no cap); returns the previous cap. io_rate - from now on the client must
 * send min_bps bytes per second on average once grace_s seconds have passed (min_bps 0: off).
 * io_expired - after IO_TIMEOUT (or a 0 from io_handshake): which deadline ran out */
enum { IO_EXP_IDLE = 0, IO_EXP_TOTAL = 1, IO_EXP_RATE = 2 };
long long io_deadline(long long at);
void io_rate(unsigned long grace_s, unsigned long min_bps);
int io_expired(void);
/* io_forget - zero the input already consumed (AUTH secrets) */
void io_forget(void);
#endif
