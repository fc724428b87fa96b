/* kdc readiness notification for systemd (Type=notify): one datagram with the state
 * ("READY=1", "RELOADING=1", "STOPPING=1", "STATUS=...") to the AF_UNIX socket that
 * $NOTIFY_SOCKET names (a path, or '@' for the abstract namespace). Without
 * $NOTIFY_SOCKET nothing is sent. The protocol of sd_notify(3), without libsystemd. */
#ifndef KDC_NOTIFY_H
#define KDC_NOTIFY_H

/* 0 when sent or not asked for; -1 when $NOTIFY_SOCKET is set but the datagram could
 * not go (the caller logs it). */
int kdc_notify(const char *state);

#endif
