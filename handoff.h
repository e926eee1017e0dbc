#ifndef HANDOFF_H
#define HANDOFF_H
/* handoff - mxguard-front's pre-started sessions (-P): the front starts the program before a
 * client comes, with a private SOCK_SEQPACKET socket as descriptors 0 and 1 and
 * HANDOFF_ENV=0 in its environment. The program says it is ready ("R"), then waits; for a
 * client the front sends one message: the client's socket (SCM_RIGHTS) and the changes to
 * the environment the client's process would have had ("NAME=VALUE\0" sets, "NAME\0"
 * unsets, in order), at most HANDOFF_MAX bytes. The program applies them, puts the socket on
 * 0 and 1, and goes on as if tcpserver had started it for that client. The exec and the C
 * library's start-up are then paid before the client connects, not while it waits for 220. */
#include <stddef.h>

#define HANDOFF_ENV "MXG_HANDOFF"
#define HANDOFF_MAX 65536
#define HANDOFF_READY 'R'

/* handoff_receive - in the program, first thing in main() when HANDOFF_ENV is set: returns
 * when the client's socket is on 0 and 1 and the environment is the client's; exits 0 when
 * the front closes the socket without a client (it ended, or has enough spare processes),
 * 111 on anything malformed. */
void handoff_receive(void);
/* handoff_send - in the front: 0 sent, -1 not (errno; the program is gone or not ready) */
int handoff_send(int ctl, const char *env, size_t len, int client);
#endif
