/*
 * The client side of the control protocol (PROTOCOL.md §5), shared by hearthctl, the
 * relay and the bench: connect, send request lines, read answer lines.
 * Requests may be pipelined: send several, then read their answers in order.
 */
#ifndef HEARTH_CTLCLIENT_H
#define HEARTH_CTLCLIENT_H

#include <stddef.h>

#include "hearth/err.h"

struct json_object;
struct ctl_client;

/* HERR_IO when the socket cannot be reached. */
struct ctl_client *ctl_connect(const char *path, struct herr *err);
void ctl_close(struct ctl_client *c);
int ctl_fd(const struct ctl_client *c);

/* Sends one request (a newline is added). Blocks until written. */
int ctl_send(struct ctl_client *c, const char *line, size_t len, struct herr *err);
int ctl_send_json(struct ctl_client *c, struct json_object *req, struct herr *err);
/*
 * Reads the next answer line; *line stays valid until the next call.
 * timeout_ms < 0 waits for ever. 1 on timeout, -1 on error or EOF.
 */
int ctl_recv(struct ctl_client *c, const char **line, size_t *len, int timeout_ms,
	     struct herr *err);
/* Sends req and parses its answer; NULL with err on transport failure. */
struct json_object *ctl_call(struct ctl_client *c, struct json_object *req, struct herr *err);

#endif
