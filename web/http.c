/*
 * The HTTP side of hearth-web: libmicrohttpd in external mode with its own
 * epoll set, whose one descriptor main.c polls beside a signalfd, so there is
 * no thread and no lock. Control calls (ctl.c) are made from the request
 * handler with a deadline; a local hearthd answers in well under a millisecond
 * per command.
 *
 * Every answer carries the same security headers. Read-only (the default),
 * anything but GET and HEAD is refused before its body is read. Without TLS the
 * Host header must name this server (DNS rebinding: a page on another site whose
 * name was pointed at 127.0.0.1 sends its own name).
 *
 * Writes (web.readonly: false, which config.c allows only with TLS and a users
 * file) are POSTs to three routes, each checked before its body is read:
 * Basic credentials against the users file (401, or 429 after repeated
 * failures), a Host this server answers to and an Origin (or Referer) that is
 * this page's own (403: another site's page cannot post here with the
 * browser's remembered credentials), and a JSON body (415) of bounded size
 * (413). hearthd still decides: it checks hearth-web's uid (PROTOCOL.md §5.4).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hearth/log.h"
#include "web.h"

struct web_http {
	const struct web_config *cfg;
	struct web_ctl *ctl;
	struct web_auth *auth;          /* NULL without web.users */
	struct MHD_Daemon *d;
	char *cert, *key;               /* PEM text, kept for MHD's lifetime */
	uint64_t requests, refused, writes;
};

/* A write whose headers passed every check, while its body arrives. */
struct upload {
	char user[WEB_USER_MAX + 1];
	char *body;
	size_t len;
	int too_large;
};

static const char realm[] = "hearth";

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static const char csp[] = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

static void add_headers(struct MHD_Response *r, const char *type, const char *cache)
{
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, "Content-Security-Policy", csp);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, "Cross-Origin-Opener-Policy", "same-origin");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, cache);
}

static enum MHD_Result send_buf(struct MHD_Connection *conn, unsigned status, const char *type,
				const char *cache, void *body, size_t len, enum MHD_ResponseMemoryMode mode,
				const char *disposition, const char *allow)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
	enum MHD_Result rc;

	if (!r) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO;
	}
	add_headers(r, type, cache);
	if (disposition)
		MHD_add_response_header(r, "Content-Disposition", disposition);
	if (allow)
		MHD_add_response_header(r, "Allow", allow);
	rc = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result send_text(struct web_http *h, struct MHD_Connection *conn, unsigned status,
				 const char *allow, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static enum MHD_Result send_error(struct web_http *h, struct MHD_Connection *conn, unsigned status,
				  const char *code, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* A short plain-text refusal or error. */
static enum MHD_Result send_text(struct web_http *h, struct MHD_Connection *conn, unsigned status,
				 const char *allow, const char *fmt, ...)
{
	char *text = NULL;
	va_list ap;
	int n;

	if (status >= 400 && status != 404)
		h->refused++;
	va_start(ap, fmt);
	n = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (n < 0)
		return MHD_NO;
	return send_buf(conn, status, "text/plain; charset=utf-8", "no-store", text, (size_t)n,
			MHD_RESPMEM_MUST_FREE, NULL, allow);
}

/*
 * A JSON refusal of a write ({"ok": false, "error": {code, message}}, as hearthd
 * words its own), so that the page shows one kind of error. 401 carries the Basic
 * challenge, which is what makes a browser ask for a name and password; 429 says
 * when to come back (retry_s).
 */
static enum MHD_Result vsend_error(struct web_http *h, struct MHD_Connection *conn, unsigned status,
				   const char *code, long long retry_s, const char *fmt, va_list ap)
{
	struct json_object *o = json_object_new_object(), *e = json_object_new_object();
	struct MHD_Response *r = NULL;
	enum MHD_Result rc = MHD_NO;
	const char *text;
	char msg[512], retry[24];
	size_t len;

	h->refused++;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	json_object_object_add(e, "code", json_object_new_string(code));
	json_object_object_add(e, "message", json_object_new_string(msg));
	json_object_object_add(o, "ok", json_object_new_boolean(0));
	json_object_object_add(o, "error", e);
	if (!(text = json_object_to_json_string_length(o, JSON_FLAGS, &len)) ||
	    !(r = MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY)))
		goto out;
	add_headers(r, "application/json", "no-store");
	if (status == MHD_HTTP_UNAUTHORIZED) {
		rc = MHD_queue_basic_auth_fail_response(conn, realm, r);
		goto out;
	}
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, "Allow", "POST");
	if (retry_s > 0) {
		snprintf(retry, sizeof(retry), "%lld", retry_s);
		MHD_add_response_header(r, "Retry-After", retry);
	}
	rc = MHD_queue_response(conn, status, r);
out:
	if (r)
		MHD_destroy_response(r);
	json_object_put(o);
	return rc;
}

static enum MHD_Result send_error(struct web_http *h, struct MHD_Connection *conn, unsigned status,
				  const char *code, const char *fmt, ...)
{
	va_list ap;
	enum MHD_Result rc;

	va_start(ap, fmt);
	rc = vsend_error(h, conn, status, code, 0, fmt, ap);
	va_end(ap);
	return rc;
}

static enum MHD_Result send_retry(struct web_http *h, struct MHD_Connection *conn, long long retry_s,
				  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum MHD_Result send_retry(struct web_http *h, struct MHD_Connection *conn, long long retry_s,
				  const char *fmt, ...)
{
	va_list ap;
	enum MHD_Result rc;

	va_start(ap, fmt);
	rc = vsend_error(h, conn, MHD_HTTP_TOO_MANY_REQUESTS, "rate_limited", retry_s, fmt, ap);
	va_end(ap);
	return rc;
}

/* The host part of a Host header, lower-cased, without port or brackets. */
static int host_name(const char *header, char *out, size_t size)
{
	const char *end;
	size_t len;

	if (header[0] == '[') {
		header++;
		if (!(end = strchr(header, ']')))
			return -1;
	} else {
		end = strchr(header, ':');
		if (!end)
			end = header + strlen(header);
	}
	len = (size_t)(end - header);
	if (len == 0 || len >= size)
		return -1;
	for (size_t i = 0; i < len; i++)
		out[i] = (char)tolower((unsigned char)header[i]);
	out[len] = '\0';
	if (len > 1 && out[len - 1] == '.')
		out[len - 1] = '\0';    /* "localhost." is localhost */
	return 0;
}

static int host_allowed(const struct web_config *cfg, const char *header)
{
	static const char *const local[] = { "localhost", "127.0.0.1", "::1", NULL };
	char name[256];

	if (!header || host_name(header, name, sizeof(name)) < 0)
		return 0;
	for (int i = 0; local[i]; i++)
		if (!strcmp(name, local[i]))
			return 1;
	/* the address it listens on, unless that is every address */
	if (cfg->host && strcmp(cfg->host, "0.0.0.0") && strcmp(cfg->host, "::") && !strcasecmp(name, cfg->host))
		return 1;
	for (size_t i = 0; i < cfg->nhosts; i++)
		if (!strcmp(name, cfg->hosts[i]))
			return 1;
	return 0;
}

struct args_ctx {
	struct MHD_Connection *conn;
};

static const char *query_arg(void *vctx, const char *key)
{
	struct args_ctx *ctx = vctx;
	return MHD_lookup_connection_value(ctx->conn, MHD_GET_ARGUMENT_KIND, key);
}

static int is_page(const char *url)
{
	return !strcmp(url, "/") || !strcmp(url, "/alerts") || !strcmp(url, "/rules") ||
	       !strcmp(url, "/status") || (!strncmp(url, "/c/", 3) && url[3]);
}

static const char *header(struct MHD_Connection *conn, const char *name)
{
	return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

/* A user name or address for a log line: printable, bounded. */
static const char *printable(char *buf, size_t size, const char *s)
{
	size_t o = 0;

	for (; s && *s && o + 1 < size; s++)
		buf[o++] = (unsigned char)*s < ' ' || *s == 0x7f ? '?' : *s;
	buf[o] = '\0';
	return buf;
}

static const struct sockaddr *peer(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	return ci ? ci->client_addr : NULL;
}

static const char *peer_text(struct MHD_Connection *conn, char *buf, size_t size)
{
	const struct sockaddr *sa = peer(conn);
	const void *a = NULL;

	if (sa && sa->sa_family == AF_INET)
		a = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	else if (sa && sa->sa_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	if (!a || !inet_ntop(sa->sa_family, a, buf, (socklen_t)size))
		snprintf(buf, size, "?");
	return buf;
}

/*
 * The request's Basic credentials checked against the users file. Only the name
 * is ever logged; the password is wiped as soon as it has been hashed.
 */
static enum web_auth_result login(struct web_http *h, struct MHD_Connection *conn, char user[WEB_USER_MAX + 1],
				  int64_t *retry_ms)
{
	char *pass = NULL, *name = MHD_basic_auth_get_username_password(conn, &pass);
	enum web_auth_result rc;
	const char *who = NULL;
	char a[64], n[80];

	user[0] = '\0';
	*retry_ms = 0;
	rc = web_auth_check(h->auth, name, pass, peer(conn), &who, retry_ms);
	if (rc == WEB_AUTH_OK)
		snprintf(user, WEB_USER_MAX + 1, "%s", who);
	else if (rc == WEB_AUTH_BAD)
		log_warning("web, login refused for '%s' from %s (unknown user or wrong password)",
			    printable(n, sizeof(n), name), peer_text(conn, a, sizeof(a)));
	else if (rc == WEB_AUTH_LIMITED)
		log_debug("web, login from %s refused unchecked: too many failures, %lld s to wait",
			  peer_text(conn, a, sizeof(a)), (long long)(*retry_ms / 1000));
	if (pass) {
		explicit_bzero(pass, strlen(pass));
		MHD_free(pass);
	}
	if (name)
		MHD_free(name);
	return rc;
}

static enum MHD_Result refuse_login(struct web_http *h, struct MHD_Connection *conn, enum web_auth_result rc,
				    int64_t retry_ms)
{
	long long retry_s = (long long)(retry_ms / 1000 + 1);

	if (rc == WEB_AUTH_LIMITED)
		return send_retry(h, conn, retry_s, "too many failed logins from this address; try again in %lld s",
				  retry_s);
	return send_error(h, conn, MHD_HTTP_UNAUTHORIZED, "unauthorized",
			  rc == WEB_AUTH_NONE ? "log in to change anything (a name and password from web.users)"
					      : "wrong name or password");
}

/*
 * The page's own origin is https://<Host>: a browser sends Origin with every
 * POST it makes, and another site's page cannot forge it. Without Origin, a
 * Referer on this origin will do (the page itself sends none: no-referrer).
 */
static int same_origin(struct MHD_Connection *conn, const char **why)
{
	const char *host = header(conn, MHD_HTTP_HEADER_HOST), *origin = header(conn, "Origin");
	const char *referer = header(conn, MHD_HTTP_HEADER_REFERER);
	char self[300];
	size_t len;

	if (!host || snprintf(self, sizeof(self), "https://%s", host) >= (int)sizeof(self)) {
		*why = "no usable Host header";
		return 0;
	}
	if (origin) {
		*why = "the Origin header is another site's";
		return !strcasecmp(origin, self);
	}
	if (!referer) {
		*why = "neither Origin nor Referer says where the request comes from";
		return 0;
	}
	*why = "the Referer header is another site's";
	len = strlen(self);
	return !strncasecmp(referer, self, len) && (referer[len] == '/' || referer[len] == '\0');
}

/* application/json, with or without parameters (charset=utf-8). */
static int is_json(const char *type)
{
	size_t n = strlen("application/json");

	if (!type || strncasecmp(type, "application/json", n))
		return 0;
	type += n;
	while (*type == ' ' || *type == '\t')
		type++;
	return *type == '\0' || *type == ';';
}

/* The first call of a POST: every check that needs only the headers. */
static enum MHD_Result begin_write(struct web_http *h, struct MHD_Connection *conn, void **con_cls)
{
	const char *len_text = header(conn, MHD_HTTP_HEADER_CONTENT_LENGTH), *why;
	char user[WEB_USER_MAX + 1], a[64];
	enum web_auth_result rc;
	struct upload *up;
	int64_t retry_ms;

	/* config.c does not allow writes without these; never rely on it alone */
	if (!h->cfg->tls_cert || !h->auth)
		return send_error(h, conn, MHD_HTTP_FORBIDDEN, "forbidden", "writes need TLS and web.users");
	if ((rc = login(h, conn, user, &retry_ms)) != WEB_AUTH_OK)
		return refuse_login(h, conn, rc, retry_ms);
	if (!host_allowed(h->cfg, header(conn, MHD_HTTP_HEADER_HOST))) {
		log_warning("web, write by %s refused: Host '%s' is not this server's (web.hosts)", user,
			    printable(a, sizeof(a), header(conn, MHD_HTTP_HEADER_HOST)));
		return send_error(h, conn, MHD_HTTP_FORBIDDEN, "cross_origin",
				  "writes are answered only for the names in web.hosts, localhost and the listen address");
	}
	if (!same_origin(conn, &why)) {
		log_warning("web, write by %s refused: %s", user, why);
		return send_error(h, conn, MHD_HTTP_FORBIDDEN, "cross_origin", "%s: writes come from this page only", why);
	}
	if (!is_json(header(conn, MHD_HTTP_HEADER_CONTENT_TYPE)))
		return send_error(h, conn, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
				  "send the body as application/json");
	unsigned long long declared = len_text ? strtoull(len_text, NULL, 10) : 0;
	if (declared > WEB_BODY_DRAIN_MAX)
		return send_error(h, conn, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", "a body of at most %d bytes",
				  WEB_BODY_MAX);
	if (!(up = calloc(1, sizeof(*up))))
		return MHD_NO;
	/*
	 * Read through and answered 413 at its end: answered now, the connection
	 * would close on a body still arriving, and the client would see a reset
	 * instead of the answer.
	 */
	up->too_large = declared > WEB_BODY_MAX;
	memcpy(up->user, user, sizeof(up->user));
	*con_cls = up;
	return MHD_YES;
}

/* The later calls of a write: the body's pieces, then (size 0) the answer. */
static enum MHD_Result continue_write(struct web_http *h, struct MHD_Connection *conn, const char *url,
				      struct upload *up, const char *data, size_t *size)
{
	struct web_reply reply = { 0 };
	enum MHD_Result rc;

	if (*size) {
		/* chunked bodies have no Content-Length: counted here */
		if (!up->too_large && up->len + *size <= WEB_BODY_MAX) {
			char *more = realloc(up->body, up->len + *size + 1);
			if (!more)
				return MHD_NO;
			up->body = more;
			memcpy(up->body + up->len, data, *size);
			up->len += *size;
			up->body[up->len] = '\0';
		} else {
			up->too_large = 1;
		}
		*size = 0;
		return MHD_YES;
	}
	if (up->too_large)
		return send_error(h, conn, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", "a body of at most %d bytes",
				  WEB_BODY_MAX);
	web_api_write(h->ctl, url + 5, up->user, up->body ? up->body : "", up->len, &reply);
	if (!reply.body)
		return send_text(h, conn, 500, NULL, "500 out of memory\n");
	if (reply.status == MHD_HTTP_OK)
		h->writes++;
	else
		h->refused++;
	rc = send_buf(conn, (unsigned)reply.status, reply.type, "no-store", reply.body, reply.len,
		      MHD_RESPMEM_MUST_FREE, NULL, NULL);
	reply.body = NULL;
	web_reply_clear(&reply);
	return rc;
}

static void reply_user(const char *user, struct web_reply *out)
{
	struct json_object *o = json_object_new_object();
	const char *text;

	json_object_object_add(o, "ok", json_object_new_boolean(1));
	json_object_object_add(o, "user", json_object_new_string(user));
	out->status = MHD_HTTP_OK;
	out->type = "application/json";
	text = json_object_to_json_string_length(o, JSON_FLAGS, &out->len);
	out->body = text ? strdup(text) : NULL;
	json_object_put(o);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode why)
{
	struct upload *up = *con_cls;

	(void)cls;
	(void)conn;
	(void)why;
	if (up) {
		free(up->body);
		free(up);
		*con_cls = NULL;
	}
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	struct web_http *h = cls;
	const struct web_asset *asset;
	struct web_reply reply = { 0 };
	const char *user = NULL;
	char who[WEB_USER_MAX + 1];
	int write_route = !strncmp(url, "/api/", 5) && web_api_is_write(url + 5);
	enum MHD_Result rc;

	(void)version;
	if (*con_cls)
		return continue_write(h, conn, url, *con_cls, upload_data, upload_data_size);
	h->requests++;
	log_debug("web, %s %s", method, url);
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD)) {
		/* read-only: refused at once, before any body is read */
		if (h->cfg->readonly)
			return send_text(h, conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET, HEAD",
					 "405 method not allowed: hearth-web is read-only\n");
		if (!write_route || strcmp(method, MHD_HTTP_METHOD_POST))
			return send_text(h, conn, MHD_HTTP_METHOD_NOT_ALLOWED, write_route ? "POST" : "GET, HEAD",
					 "405 method not allowed\n");
		return begin_write(h, conn, con_cls);
	}
	if (!h->cfg->tls_cert &&
	    !host_allowed(h->cfg, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST))) {
		log_debug("web, refused Host '%s'",
			  MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST) ?: "");
		return send_text(h, conn, 421, NULL,
				 "421 this server does not answer to that Host name (web.hosts in web.yaml)\n");
	}
	if (!h->cfg->readonly && write_route)
		return send_error(h, conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", "POST only");
	if (is_page(url) && (asset = web_asset_shell()))
		return send_buf(conn, MHD_HTTP_OK, asset->type, "no-cache", (void *)asset->data, asset->len,
				MHD_RESPMEM_PERSISTENT, NULL, NULL);
	if ((asset = web_asset_find(url)))
		return send_buf(conn, MHD_HTTP_OK, asset->type, "no-cache", (void *)asset->data, asset->len,
				MHD_RESPMEM_PERSISTENT, NULL, NULL);
	if (!h->cfg->readonly && !strcmp(url, "/api/login")) {
		/* the page's "log in" button: the 401 challenge makes the browser ask */
		int64_t retry_ms;
		enum web_auth_result arc = login(h, conn, who, &retry_ms);
		if (arc != WEB_AUTH_OK)
			return refuse_login(h, conn, arc, retry_ms);
		reply_user(who, &reply);
	} else if (!strcmp(url, "/metrics")) {
		struct web_metrics_in in = { h->requests, h->refused, web_auth_failures(h->auth), h->writes };
		web_metrics(h->ctl, &in, &reply);
	} else if (!strncmp(url, "/api/", 5) || !strcmp(url, "/api")) {
		struct args_ctx actx = { conn };
		const char *path = url[4] ? url + 5 : "";
		/* the index says who is logged in, when the browser sends credentials of its own accord */
		if (!h->cfg->readonly && (!*path || !strcmp(path, "/")) && header(conn, MHD_HTTP_HEADER_AUTHORIZATION)) {
			int64_t retry_ms;
			if (login(h, conn, who, &retry_ms) == WEB_AUTH_OK)
				user = who;
		}
		web_api(h->ctl, h->cfg, path, query_arg, &actx, user, &reply);
	} else {
		return send_text(h, conn, MHD_HTTP_NOT_FOUND, NULL, "404 not found\n");
	}
	if (!reply.body)
		return send_text(h, conn, 500, NULL, "500 out of memory\n");
	if (reply.status >= 500)
		log_debug("web, %s answered %d", url, reply.status);
	rc = send_buf(conn, (unsigned)reply.status, reply.type, "no-store", reply.body, reply.len,
		      MHD_RESPMEM_MUST_FREE, reply.disposition, NULL);
	reply.body = NULL;
	web_reply_clear(&reply);
	return rc;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t len;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	len = strlen(msg);
	while (len && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
		msg[--len] = '\0';
	log_debug("http, %s", msg);
}

static char *read_file(const char *path, struct herr *err)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (!f) {
		herr_set(err, HERR_IO, "cannot open '%s' (%s)", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		if (cap - len < 4096) {
			char *more = cap > (1 << 20) ? NULL : realloc(buf, cap + 65536);
			if (!more) {
				herr_set(err, HERR_IO, "'%s' is too large for a PEM file", path);
				free(buf);
				buf = NULL;
				goto out;
			}
			buf = more;
			cap += 65536;
		}
		size_t n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		herr_set(err, HERR_IO, "cannot read '%s' (%s)", path, strerror(errno));
		free(buf);
		buf = NULL;
		goto out;
	}
	buf[len] = '\0';
out:
	fclose(f);
	return buf;
}

struct web_http *web_http_new(const struct web_config *cfg, struct web_ctl *ctl, struct web_auth *auth,
			      int listen_fd, struct herr *err)
{
	struct web_http *h = calloc(1, sizeof(*h));
	unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;

	if (!h) {
		herr_set(err, HERR_NOMEM, "out of memory");
		return NULL;
	}
	h->cfg = cfg;
	h->ctl = ctl;
	h->auth = auth;
	if (cfg->tls_cert) {
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			herr_set(err, HERR_IO, "web.tls: this libmicrohttpd was built without TLS");
			goto fail;
		}
		if (!(h->cert = read_file(cfg->tls_cert, err)) || !(h->key = read_file(cfg->tls_key, err)))
			goto fail;
		flags |= MHD_USE_TLS;
	}
	h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
				MHD_OPTION_LISTEN_SOCKET, listen_fd,
				MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)256,
				MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)64,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536,
				h->cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, h->cert,
				MHD_OPTION_HTTPS_MEM_KEY, h->key,
				MHD_OPTION_END);
	if (!h->d) {
		herr_set(err, HERR_IO, "cannot start the HTTP server%s", h->cert ? " (is the TLS key or certificate bad?)" : "");
		goto fail;
	}
	return h;
fail:
	web_http_free(h);
	return NULL;
}

void web_http_free(struct web_http *h)
{
	if (!h)
		return;
	if (h->d)
		MHD_stop_daemon(h->d);
	free(h->cert);
	if (h->key) {
		explicit_bzero(h->key, strlen(h->key));
		free(h->key);
	}
	free(h);
}

int web_http_fd(const struct web_http *h)
{
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
	return info ? info->epoll_fd : -1;
}

int64_t web_http_timeout_ms(const struct web_http *h)
{
	MHD_UNSIGNED_LONG_LONG t;

	if (MHD_get_timeout(h->d, &t) != MHD_YES)
		return -1;
	return t > 60000 ? 60000 : (int64_t)t;
}

void web_http_run(struct web_http *h)
{
	MHD_run(h->d);
}
