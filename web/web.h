/*
 * hearth-web: the page sales managers open every morning (docs/WEB.md).
 *
 * A companion process beside hearthd, as systemd-journal-gatewayd sits beside
 * journald: it serves a small web application over HTTP, read-only unless
 * web.readonly is false
 * (libmicrohttpd, driven from our own poll loop) and speaks to hearthd only
 * through the control socket (PROTOCOL.md §5), so HTTP parsing never runs in the
 * process that holds the store.
 *
 *   config.c  web.yaml → struct web_config (file:line:col errors, as the relay)
 *   auth.c    the users file and HTTP Basic authentication (writes, v2)
 *   ctl.c     the control connection: pipelined calls with a deadline
 *   api.c     /api/…: one read-only control command per route, the views the
 *             pages use (several commands answered in one round trip), and the
 *             writes: ack, silence.add, silence.remove, nothing else
 *   http.c    the HTTP side: routes, methods, Host check, security headers, TLS,
 *             and for writes: login, same-origin check, JSON bodies
 *   assets.c  the static files, embedded at build time
 *   main.c    options, signals, the loop
 */
#ifndef HEARTH_WEB_H
#define HEARTH_WEB_H

/* where hearth-web finds hearthd when its file names neither control.path nor nats */
#define WEB_CONTROL_DEFAULT "/run/hearth/control.sock"

#include <stddef.h>
#include <stdint.h>

#include "hearth/err.h"

struct json_object;

#define WEB_EXIT_OK     0
#define WEB_EXIT_FAIL   1
#define WEB_EXIT_USAGE  2
#define WEB_EXIT_CONFIG 78

#define WEB_TOP_DEFAULT   16
#define WEB_TOP_MAX       200       /* rows a page may ask for */
#define WEB_LIST_MAX      10000     /* PROTOCOL.md §5.5 */
#define WEB_TIMELINE_PAGE 50
#define WEB_HOSTS_MAX     32
#define WEB_USER_MAX      63        /* hearthd's `by` (PROTOCOL.md §5.14) */
#define WEB_BODY_MAX      16384     /* a write's JSON body */
#define WEB_BODY_DRAIN_MAX (1 << 20) /* a larger one is read through to answer 413; past this, refused unread */
#define WEB_COMMENT_MAX   255       /* silence.add's `comment` (PROTOCOL.md §5.15) */

struct web_config {
	char *path;
	char *listen;                   /* HOST:PORT as written */
	char *host;                     /* HOST without brackets */
	char *port;
	char *control;                  /* hearthd's control socket, or NULL with nats */
	int64_t control_timeout_ms;     /* for either transport */
	struct web_nats_config {        /* `nats:`, a cluster of shards (PROTOCOL.md §9) */
		char *urls;             /* "nats://a:4222,nats://b:4222"; NULL: no cluster */
		char *user, *password, *creds;
		char *prefix;           /* "hearth" */
		uint32_t partitions;    /* 16 */
	} nats;
	char *hosts[WEB_HOSTS_MAX];     /* extra names allowed in Host */
	size_t nhosts;
	char *tls_cert, *tls_key;       /* both or neither */
	char *users;                    /* web.users: name:hash lines, or NULL */
	int readonly;                   /* 0 only with TLS and users (config.c) */
	int64_t refresh_ms;
	int top;
	int log_level;
};

/*
 * config.c: every error printed as file:line:col; NULL when there were any.
 * control_arg (--control, may be NULL) replaces control.path.
 */
struct web_config *web_config_load(const char *path, const char *control_arg, int *nerrors);
void web_config_free(struct web_config *cfg);
/* Splits "HOST:PORT" / "[V6]:PORT" into host (no brackets) and port; -1 if malformed. */
int web_split_listen(const char *text, char **host, char **port);

/* auth.c: the users file, and HTTP Basic credentials checked against it. */
struct web_auth;
struct sockaddr;
enum web_auth_result { WEB_AUTH_OK, WEB_AUTH_NONE, WEB_AUTH_BAD, WEB_AUTH_LIMITED };
/* Reads the file; NULL after printing every error as file:line:col (*nerrors). */
struct web_auth *web_auth_new(const char *path, int *nerrors);
void web_auth_free(struct web_auth *a);
/* Reads the file again (SIGHUP); on errors the users loaded before stay, and -1. */
int web_auth_reload(struct web_auth *a);
/*
 * Checks a user and password from the client at peer. WEB_AUTH_OK sets *name (the
 * file's copy, valid until the next reload); WEB_AUTH_LIMITED (too many failures
 * from that address) sets *retry_ms. user NULL is WEB_AUTH_NONE.
 */
enum web_auth_result web_auth_check(struct web_auth *a, const char *user, const char *password,
				    const struct sockaddr *peer, const char **name, int64_t *retry_ms);
uint64_t web_auth_failures(const struct web_auth *a);

/*
 * ctl.c: the way to hearthd, whichever transport the configuration names: its
 * control socket (ctl_socket.c) or a cluster's shards over NATS (ctl_nats.c).
 * api.c sees only this.
 */
struct web_ctl;
struct web_ctl *web_ctl_new(const struct web_config *cfg, struct herr *err);
void web_ctl_free(struct web_ctl *c);
/*
 * Sends n requests at once and reads their n answers, in order, each within the
 * deadline. On a transport failure every answer is NULL and err says why
 * (HERR_IO): hearthd (or the shard owning a customer) cannot be reached.
 * Answers belong to the caller.
 */
int web_ctl_calls(struct web_ctl *c, struct json_object **reqs, struct json_object **answers,
		  size_t n, struct herr *err);
/*
 * One command that changes state (ack, silence.*): sent once, never again after
 * a failure, since hearthd may have done it already.
 */
int web_ctl_write(struct web_ctl *c, struct json_object *req, struct json_object **answer, struct herr *err);
uint64_t web_ctl_failures(const struct web_ctl *c);
/* Where hearthd is reached, for log lines: the socket path, or "NATS <urls>". */
const char *web_ctl_where(const struct web_ctl *c);
/*
 * The partitions missing from merged answers (a shard did not answer in time)
 * since the last take, as a new array, or NULL when every answer was complete.
 */
struct json_object *web_ctl_take_missing(struct web_ctl *c);

/* A transport: what ctl.c needs of one. Both send writes once. */
struct web_transport_ops;
struct web_transport {
	const struct web_transport_ops *ops;
};
struct web_transport_ops {
	int (*calls)(struct web_transport *t, struct json_object **reqs, struct json_object **answers, size_t n,
		     struct herr *err);
	int (*write)(struct web_transport *t, struct json_object *req, struct json_object **answer,
		     struct herr *err);
	void (*free)(struct web_transport *t);
};
/* ctl_socket.c: hearthd's control socket, one kept connection, pipelined requests. */
struct web_transport *web_socket_transport_new(const char *path, int64_t timeout_ms);
/* ctl_nats.c: the shards through NATS (libhearth's natsctl): routed or scattered and merged. */
struct web_transport *web_nats_transport_new(const struct web_nats_config *n, int64_t timeout_ms,
					     struct herr *err);

/* api.c: an answer to one /api/ request. */
struct web_reply {
	int status;                     /* HTTP status */
	const char *type;               /* Content-Type */
	char *body;                     /* malloc'd */
	size_t len;
	char *disposition;              /* Content-Disposition, or NULL */
};
/* A lookup of one query argument of the request being answered. */
typedef const char *(*web_arg_fn)(void *ctx, const char *key);
/* A GET of /api/<path>; user is who logged in (NULL: nobody, or writes are off). */
void web_api(struct web_ctl *ctl, const struct web_config *cfg, const char *path,
	     web_arg_fn arg, void *arg_ctx, const char *user, struct web_reply *out);
/* 1 when /api/<path> is a write route: ack, silence, silence/<id>/remove. */
int web_api_is_write(const char *path);
/* A POST of /api/<path> (a write route) by user, with its JSON body. */
void web_api_write(struct web_ctl *ctl, const char *path, const char *user, const char *body, size_t len,
		   struct web_reply *out);
/* /metrics: hearthd's exposition plus hearth-web's own counters. */
struct web_metrics_in {
	uint64_t requests, refused, auth_failures, writes;
};
void web_metrics(struct web_ctl *ctl, const struct web_metrics_in *in, struct web_reply *out);
void web_reply_clear(struct web_reply *r);

/* assets.c */
struct web_asset {
	const char *path;               /* "/static/app.js" */
	const char *type;
	const unsigned char *data;
	size_t len;
};
const struct web_asset *web_asset_find(const char *path);
/* The HTML shell served for every page route (/, /alerts, /c/<id>, …). */
const struct web_asset *web_asset_shell(void);

/* http.c */
struct web_http;
/* auth is NULL without web.users; writes need it (and TLS). */
struct web_http *web_http_new(const struct web_config *cfg, struct web_ctl *ctl, struct web_auth *auth,
			      int listen_fd, struct herr *err);
void web_http_free(struct web_http *h);
/* The fd to poll for input (MHD's epoll fd), and how long until MHD wants a turn. */
int web_http_fd(const struct web_http *h);
int64_t web_http_timeout_ms(const struct web_http *h);
void web_http_run(struct web_http *h);

#endif
