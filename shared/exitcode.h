/* Exit codes of the initiator and the responder (their --help lists them). */
#ifndef KD3_EXITCODE_H
#define KD3_EXITCODE_H

#define KD3_EXIT_OK        0 /* the session ended with CLOSE both ways */
#define KD3_EXIT_RUNTIME   1 /* any other failure */
#define KD3_EXIT_USAGE     2 /* bad option, config or key file */
#define KD3_EXIT_HANDSHAKE 3 /* the exchange failed (including an ERROR from the peer or KDC) */
#define KD3_EXIT_AUTH      4 /* a record, confirm value or sealed key failed authentication */
#define KD3_EXIT_GONE      5 /* peer unreachable or vanished, session truncated, timeout */

#endif
