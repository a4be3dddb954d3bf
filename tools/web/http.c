/*
 * The HTTP side of hearth-web: libmicrohttpd in external mode with its own
 * epoll set, whose one descriptor main.c polls beside a signalfd, so there is
 * no thread and no lock. Control calls (ctl.c) are made from the request
 * handler with a deadline; a local hearthd answers in well under a millisecond
 * per command.
 *
 * Every answer carries the same security headers; v1 is read-only, so anything
 * but GET and HEAD is refused before its body is read; without TLS the Host
 * header must name this server (DNS rebinding: a page on another site whose
 * name was pointed at 127.0.0.1 sends its own name).
 */
#include <ctype.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/log.h"
#include "web.h"

struct web_http {
	const struct web_config *cfg;
	struct web_ctl *ctl;
	struct MHD_Daemon *d;
	char *cert, *key;               /* PEM text, kept for MHD's lifetime */
	uint64_t requests, refused;
};

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

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	struct web_http *h = cls;
	const struct web_asset *asset;
	struct web_reply reply = { 0 };
	enum MHD_Result rc;

	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)con_cls;
	h->requests++;
	log_debug("web, %s %s", method, url);
	/* read-only: refused at once, before any body is read */
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return send_text(h, conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET, HEAD",
				 "405 method not allowed: hearth-web is read-only\n");
	if (!h->cfg->tls_cert &&
	    !host_allowed(h->cfg, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST))) {
		log_debug("web, refused Host '%s'",
			  MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST) ?: "");
		return send_text(h, conn, 421, NULL,
				 "421 this server does not answer to that Host name (web.hosts in web.yaml)\n");
	}
	if (is_page(url) && (asset = web_asset_shell()))
		return send_buf(conn, MHD_HTTP_OK, asset->type, "no-cache", (void *)asset->data, asset->len,
				MHD_RESPMEM_PERSISTENT, NULL, NULL);
	if ((asset = web_asset_find(url)))
		return send_buf(conn, MHD_HTTP_OK, asset->type, "no-cache", (void *)asset->data, asset->len,
				MHD_RESPMEM_PERSISTENT, NULL, NULL);
	if (!strcmp(url, "/metrics")) {
		struct web_metrics_in in = { h->requests, h->refused };
		web_metrics(h->ctl, &in, &reply);
	} else if (!strncmp(url, "/api/", 5) || !strcmp(url, "/api")) {
		struct args_ctx actx = { conn };
		web_api(h->ctl, h->cfg, url[4] ? url + 5 : "", query_arg, &actx, &reply);
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

struct web_http *web_http_new(const struct web_config *cfg, struct web_ctl *ctl, int listen_fd, struct herr *err)
{
	struct web_http *h = calloc(1, sizeof(*h));
	unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;

	if (!h) {
		herr_set(err, HERR_NOMEM, "out of memory");
		return NULL;
	}
	h->cfg = cfg;
	h->ctl = ctl;
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
