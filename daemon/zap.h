/*
 * zap.h - CurveZMQ for vmingestd's sockets: key files, the ZAP handler
 * (RFC 27) with a key allowlist, the insecure-bind check, and socket
 * monitors that log and count rejected handshakes.
 *
 *   zap_endpoint_local_ok  1 if an endpoint only listens on loopback/ipc
 *   zap_read_key           read a one-line Z85 key file (40 characters)
 *   zap_start              load keys, bind inproc://zeromq.zap.01, start the
 *                          handler thread (only when CURVE is configured)
 *   zap_secure_socket      make a socket a CURVE server in domain "vmingest"
 *                          (no-op when CURVE is off)
 *   zap_stop               stop the handler thread, close its socket
 *   zap_monitor_open       start a socket monitor, return the PAIR end
 *   zap_monitor_drain      read the monitor's pending events, update counters
 *
 * Threads: the handler thread owns its REP socket.  zap_secure_socket is
 * called by whoever creates the socket, before bind.  A monitor PAIR
 * belongs to the thread that owns the monitored socket.
 *
 * SECURITY: the ZAP request comes from libzmq but carries a peer's public
 * key and address; only a key listed in authorized_keys_dir (one Z85 key
 * per file, re-read when the directory changes) gets status 200, and only
 * for mechanism CURVE in domain "vmingest".  ZMQ_ZAP_ENFORCE_DOMAIN is set
 * so that a peer is never admitted when the handler is not answering.
 */
#ifndef VMI_ZAP_H
#define VMI_ZAP_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define ZAP_DOMAIN	"vmingest"
#define ZAP_KEY_LEN	40	/* Z85 of a 32-byte key */

struct zap;

struct zap_counters {
	uint64_t connected;	/* accepted - disconnected */
	uint64_t accepted;
	uint64_t disconnected;
	uint64_t auth_failures;	/* handshake failed (mechanism, protocol, ZAP) */
};

int	zap_endpoint_local_ok(const char *endpoint);
int	zap_read_key(const char *path, char key[ZAP_KEY_LEN + 1]);
/* *out is NULL (and 0 returned) when CURVE is not configured. */
int	zap_start(struct zap **out, void *ctx, const struct config *cf,
	    char *err, size_t errlen);
int	zap_secure_socket(struct zap *, void *sock, char *err, size_t errlen);
void	zap_stop(struct zap *);

void	*zap_monitor_open(void *ctx, void *sock, const char *name);
void	zap_monitor_drain(void *pair, const char *what, struct zap_counters *);

#endif
