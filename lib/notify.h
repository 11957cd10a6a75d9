/* systemd's readiness protocol (sd_notify(3)) without libsystemd: one
 * datagram to the socket named by $NOTIFY_SOCKET ("READY=1", "STOPPING=1",
 * "STATUS=..."). Without $NOTIFY_SOCKET (not started by systemd with
 * Type=notify) every call is a no-op that succeeds. */
#ifndef WEFT_NOTIFY_H
#define WEFT_NOTIFY_H

/* Sends state (e.g. "READY=1\nSTATUS=serving") to $NOTIFY_SOCKET. WEFT_OK when
 * sent or when there is no socket; a weft_err with *err set when not. */
int notify_systemd(const char *state, char **err);

#endif
