/* kd3 process set-up shared by the three executables, called first thing in main(). */
#ifndef KD3_PROC_H
#define KD3_PROC_H

/* - Opens /dev/null on any of fds 0, 1, 2 that is closed, so no socket or file we
 *   open later can land there (a closed stdout would send plaintext to a socket).
 * - No core dumps, and no ptrace by other processes of the same user
 *   (PR_SET_DUMPABLE 0): the process holds keys.
 * - Ignores SIGPIPE: a vanished peer is an error from write(), not a signal.
 * Returns KD3_OK, or KD3_E_IO when fds 0-2 cannot be made safe (then exit). */
int kd3_proc_harden(void);

#endif
