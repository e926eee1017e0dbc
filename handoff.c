/* handoff.c - both ends of mxguard-front's pre-started sessions (handoff.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include "handoff.h"

static char block[HANDOFF_MAX + 1];

void handoff_receive(void)
{
  char r = HANDOFF_READY;
  union { struct cmsghdr h; char space[CMSG_SPACE(sizeof(int))]; } u;
  struct msghdr m;
  struct iovec v;
  struct cmsghdr *h;
  ssize_t n;
  size_t i;
  int fd = -1;
  if (write(0, &r, 1) != 1) _exit(0);  /* the front is gone already */
  memset(&m, 0, sizeof m);
  v.iov_base = block;
  v.iov_len = HANDOFF_MAX;
  m.msg_iov = &v;
  m.msg_iovlen = 1;
  m.msg_control = u.space;
  m.msg_controllen = sizeof u.space;
  do n = recvmsg(0, &m, MSG_CMSG_CLOEXEC); while (n == -1 && errno == EINTR);
  if (n == 0) _exit(0);  /* no client for us: the front ended or needs fewer spares */
  for (h = n > 0 ? CMSG_FIRSTHDR(&m) : 0; h; h = CMSG_NXTHDR(&m, h))
    if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS &&
        h->cmsg_len == CMSG_LEN(sizeof(int)))
      memcpy(&fd, CMSG_DATA(h), sizeof fd);
  if (n < 0 || fd < 0 || (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) _exit(111);
  block[n] = 0;
  for (i = 0; i < (size_t)n; i += strlen(block + i) + 1) {
    char *e = block + i, *eq = strchr(e, '=');
    if (!*e || *e == '=') continue;  /* no name: nothing a process could have been given */
    if (eq) {
      *eq = 0;
      if (setenv(e, eq + 1, 1) == -1) _exit(111);
      *eq = '=';
    } else if (unsetenv(e) == -1) _exit(111);
  }
  unsetenv(HANDOFF_ENV);
  if (dup2(fd, 0) == -1 || dup2(fd, 1) == -1) _exit(111);
  if (fd > 1) close(fd);
}

int handoff_send(int ctl, const char *env, size_t len, int client)
{
  union { struct cmsghdr h; char space[CMSG_SPACE(sizeof(int))]; } u;
  struct msghdr m;
  struct iovec v;
  struct cmsghdr *h;
  ssize_t n;
  char none = 0;
  if (len > HANDOFF_MAX) { errno = EMSGSIZE; return -1; }
  memset(&m, 0, sizeof m);
  memset(&u, 0, sizeof u);
  v.iov_base = len ? (void *)env : &none;  /* a message of 0 bytes would read as end of file */
  v.iov_len = len ? len : 1;
  m.msg_iov = &v;
  m.msg_iovlen = 1;
  m.msg_control = u.space;
  m.msg_controllen = sizeof u.space;
  h = CMSG_FIRSTHDR(&m);
  h->cmsg_level = SOL_SOCKET;
  h->cmsg_type = SCM_RIGHTS;
  h->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(h), &client, sizeof client);
  do n = sendmsg(ctl, &m, MSG_NOSIGNAL | MSG_DONTWAIT); while (n == -1 && errno == EINTR);
  return n == (ssize_t)v.iov_len ? 0 : -1;
}
