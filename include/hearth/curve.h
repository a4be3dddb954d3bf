/*
 * ZeroMQ CURVE for the ingest and publish sockets: hearth's key files, the
 * server side of a socket, and a ZAP handler that admits only the client keys
 * found in the authorized_keys directory. Key files are text:
 *   public=<40 Z85 characters>
 *   secret=<40 Z85 characters>      (only in a .key file, mode 0600)
 */
#ifndef HEARTH_CURVE_H
#define HEARTH_CURVE_H

#include "hearth/err.h"

struct config;
struct loop;
struct zap;

#define CURVE_KEY_Z85 41         /* 40 characters and the terminator */

/* Reads "which" (public or secret) from a key file. */
int curve_read_key(const char *path, const char *which, char out[CURVE_KEY_Z85], struct herr *err);
/* Writes NAME.key (public and secret, 0600) and NAME.pub (public only). */
int curve_keygen(const char *name, char public_z85[CURVE_KEY_Z85], struct herr *err);
/* Makes zsock a CURVE server with the configured secret key (no-op without curve). */
int curve_server_setup(void *zsock, const struct config *cfg, struct herr *err);

/* The ZAP handler, watched by the loop; NULL (and no error) without curve. */
struct zap *zap_open(const struct config *cfg, void *zctx, struct loop *loop, struct herr *err);
void zap_close(struct zap *zap);
/* Re-reads the authorized keys of cfg (after a reload). */
void zap_reload(struct zap *zap, const struct config *cfg);

#endif
