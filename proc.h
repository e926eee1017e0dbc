/* proc.h - a child's exit awaited without a sleep loop: a pidfd polled within a deadline, or,
 * where the kernel has no pidfd_open (before Linux 5.3), a blocking waitpid that an interval
 * timer interrupts at the deadline */
#ifndef PROC_H
#define PROC_H
#include <sys/types.h>

/* proc_pidfd - a close-on-exec pidfd for our child pid (also a zombie), or -1 */
int proc_pidfd(pid_t pid);

/* proc_wait - reap pid before until_ms (CLOCK_MONOTONIC ms, as proc_now_ms); pidfd may be -1.
 * 1 exited (*wstat set), 0 deadline passed (the child is left running), -1 wait error */
int proc_wait(pid_t pid, int pidfd, int *wstat, long long until_ms);

/* proc_reaped - after pidfd polled readable: 1 reaped (*wstat set), 0 not yet, -1 error */
int proc_reaped(pid_t pid, int *wstat);

long long proc_now_ms(void);
#endif
