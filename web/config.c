/*
 * web.yaml (docs/WEB.md) → struct web_config. Like the daemon's and the relay's
 * loaders it keeps going after an error, printing each as file:line:col, so one
 * --check run shows every mistake; unknown keys are errors so a typo never goes
 * unnoticed.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/log.h"
#include "hearth/units.h"
#include "hearth/yamltree.h"
#include "web.h"

struct loader {
	const char *file;
	int errors;
	const struct ynode *control_path;       /* where control.path was given */
	const struct ynode *nats;               /* where nats: was given */
};

static void cerr(struct loader *ld, const struct ynode *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void cerr(struct loader *ld, const struct ynode *n, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s:%d:%d: ", ld->file, n ? n->line : 1, n ? n->col : 1);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	ld->errors++;
}

static char *get_str(struct loader *ld, const struct ynode *n, const char *what)
{
	char *s;

	if (n->kind != YNODE_SCALAR) {
		cerr(ld, n, "%s: expected a string, found a %s", what, ynode_kind_name(n->kind));
		return NULL;
	}
	if (n->len == 0) {
		cerr(ld, n, "%s: must not be empty", what);
		return NULL;
	}
	if (!(s = strdup(n->value)))
		cerr(ld, n, "%s: out of memory", what);
	return s;
}

static int get_bool(struct loader *ld, const struct ynode *n, const char *what, int *out)
{
	if (n->kind == YNODE_SCALAR && n->plain && strcmp(n->value, "true") == 0) {
		*out = 1;
		return 0;
	}
	if (n->kind == YNODE_SCALAR && n->plain && strcmp(n->value, "false") == 0) {
		*out = 0;
		return 0;
	}
	cerr(ld, n, "%s: expected true or false", what);
	return -1;
}

int web_split_listen(const char *text, char **host, char **port)
{
	const char *colon, *h, *p;
	size_t hlen;
	char *end;
	long num;

	*host = *port = NULL;
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || close[1] != ':')
			return -1;
		h = text + 1;
		hlen = (size_t)(close - h);
		p = close + 2;
	} else {
		colon = strrchr(text, ':');
		if (!colon || strchr(text, ':') != colon)
			return -1;
		h = text;
		hlen = (size_t)(colon - text);
		p = colon + 1;
	}
	num = strtol(p, &end, 10);
	if (hlen == 0 || *p == '\0' || *end != '\0' || num < 0 || num > 65535)
		return -1;
	if (!(*host = strndup(h, hlen)) || !(*port = strdup(p))) {
		free(*host);
		*host = NULL;
		return -1;
	}
	return 0;
}

/* A name a browser may send in Host: letters, digits, '-', '.', ':' (IPv6) and brackets. */
static int valid_host_name(const char *s)
{
	if (!*s || strlen(s) > 253)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("-.:[]", *s))
			return 0;
	return 1;
}

static void load_web(struct loader *ld, const struct ynode *v, struct web_config *cfg)
{
	const struct ynode *cert = NULL, *key = NULL, *readonly = NULL;

	if (v->kind != YNODE_MAP) {
		cerr(ld, v, "web: expected a map (listen, hosts, readonly, users, refresh, top, tls)");
		return;
	}
	for (size_t i = 0; i < v->n; i++) {
		const struct ynode *k = ynode_key(v, i), *x = ynode_val(v, i);
		if (strcmp(k->value, "listen") == 0) {
			free(cfg->listen);
			cfg->listen = get_str(ld, x, "web.listen");
			if (cfg->listen) {
				char *h, *p;
				if (web_split_listen(cfg->listen, &h, &p) < 0) {
					cerr(ld, x, "web.listen: expected HOST:PORT such as 127.0.0.1:8080 or [::1]:8080");
				} else {
					free(h);
					free(p);
				}
			}
		} else if (strcmp(k->value, "hosts") == 0) {
			if (x->kind != YNODE_SEQ) {
				cerr(ld, x, "web.hosts: expected a list of host names");
				continue;
			}
			for (size_t j = 0; j < x->n; j++) {
				char *s = get_str(ld, x->items[j], "web.hosts");
				if (!s)
					continue;
				if (!valid_host_name(s)) {
					cerr(ld, x->items[j], "web.hosts: '%s' is not a host name or address", s);
					free(s);
				} else if (cfg->nhosts == WEB_HOSTS_MAX) {
					cerr(ld, x->items[j], "web.hosts: at most %d names", WEB_HOSTS_MAX);
					free(s);
				} else {
					for (char *c = s; *c; c++)
						*c = (char)tolower((unsigned char)*c);
					cfg->hosts[cfg->nhosts++] = s;
				}
			}
		} else if (strcmp(k->value, "readonly") == 0) {
			if (get_bool(ld, x, "web.readonly", &cfg->readonly) == 0)
				readonly = x;
		} else if (strcmp(k->value, "users") == 0) {
			free(cfg->users);
			cfg->users = get_str(ld, x, "web.users");
		} else if (strcmp(k->value, "refresh") == 0) {
			if (x->kind != YNODE_SCALAR || duration_parse(x->value, x->len, &cfg->refresh_ms) < 0 ||
			    cfg->refresh_ms < MS_PER_SECOND || cfg->refresh_ms > 10 * MS_PER_MINUTE)
				cerr(ld, x, "web.refresh: expected a duration from 1s to 10m, such as 30s");
		} else if (strcmp(k->value, "top") == 0) {
			char *end = NULL;
			long n = x->kind == YNODE_SCALAR ? strtol(x->value, &end, 10) : 0;
			if (!end || *end || n < 1 || n > WEB_TOP_MAX)
				cerr(ld, x, "web.top: expected a count from 1 to %d", WEB_TOP_MAX);
			else
				cfg->top = (int)n;
		} else if (strcmp(k->value, "tls") == 0) {
			if (x->kind != YNODE_MAP) {
				cerr(ld, x, "web.tls: expected a map (cert, key)");
				continue;
			}
			for (size_t j = 0; j < x->n; j++) {
				const struct ynode *tk = ynode_key(x, j), *tv = ynode_val(x, j);
				if (strcmp(tk->value, "cert") == 0) {
					cert = tv;
					cfg->tls_cert = get_str(ld, tv, "web.tls.cert");
				} else if (strcmp(tk->value, "key") == 0) {
					key = tv;
					cfg->tls_key = get_str(ld, tv, "web.tls.key");
				} else {
					cerr(ld, tk, "web.tls: unknown key '%s' (cert, key)", tk->value);
				}
			}
			if (!cert != !key)
				cerr(ld, x, "web.tls: give both cert and key, or neither");
		} else {
			cerr(ld, k, "web: unknown key '%s' (listen, hosts, readonly, users, refresh, top, tls)",
			     k->value);
		}
	}
	/* Writes ride on a password sent with every request: never in clear, never
	 * without knowing who is asking. hearthd's own admin check (PROTOCOL.md §5.4)
	 * still decides whether they go through. */
	if (readonly && !cfg->readonly && (!cert || !key || !cfg->users))
		cerr(ld, readonly, "web.readonly: false needs %s: writes are served only over HTTPS to people who "
			       "log in; keep the page read-only (true) until both are set",
		     !cfg->users && (!cert || !key) ? "web.tls (cert and key) and web.users"
		     : !cfg->users ? "web.users (the file of name:hash lines)" : "web.tls (cert and key)");
}

static void load_control(struct loader *ld, const struct ynode *v, struct web_config *cfg)
{
	if (v->kind != YNODE_MAP) {
		cerr(ld, v, "control: expected a map (path, timeout)");
		return;
	}
	for (size_t i = 0; i < v->n; i++) {
		const struct ynode *k = ynode_key(v, i), *x = ynode_val(v, i);
		if (strcmp(k->value, "path") == 0) {
			free(cfg->control);
			cfg->control = get_str(ld, x, "control.path");
			ld->control_path = x;
		} else if (strcmp(k->value, "timeout") == 0) {
			if (x->kind != YNODE_SCALAR ||
			    duration_parse(x->value, x->len, &cfg->control_timeout_ms) < 0 ||
			    cfg->control_timeout_ms < 100 || cfg->control_timeout_ms > MS_PER_MINUTE)
				cerr(ld, x, "control.timeout: expected a duration from 100ms to 1m, such as 5s");
		} else {
			cerr(ld, k, "control: unknown key '%s' (path, timeout)", k->value);
		}
	}
}

/* One URL, or a list of them, into "url,url" (any one of them will do). */
static char *get_urls(struct loader *ld, const struct ynode *x)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	if (x->kind == YNODE_SCALAR)
		return get_str(ld, x, "nats.url");
	if (x->kind != YNODE_SEQ || x->n == 0) {
		cerr(ld, x, "nats.url: expected a URL such as nats://10.0.0.1:4222, or a list of them");
		return NULL;
	}
	if (!(f = open_memstream(&out, &len))) {
		cerr(ld, x, "nats.url: out of memory");
		return NULL;
	}
	for (size_t j = 0; j < x->n; j++) {
		char *u = get_str(ld, x->items[j], "nats.url");
		if (u)
			fprintf(f, "%s%s", j ? "," : "", u);
		free(u);
	}
	if (fclose(f) != 0) {
		free(out);
		cerr(ld, x, "nats.url: out of memory");
		return NULL;
	}
	return out;
}

static void load_nats(struct loader *ld, const struct ynode *v, struct web_config *cfg)
{
	struct web_nats_config *n = &cfg->nats;
	const struct ynode *password = NULL, *creds = NULL;

	ld->nats = v;
	if (v->kind != YNODE_MAP) {
		cerr(ld, v, "nats: expected a map (url, user, password, creds, prefix, partitions)");
		return;
	}
	for (size_t i = 0; i < v->n; i++) {
		const struct ynode *k = ynode_key(v, i), *x = ynode_val(v, i);
		if (strcmp(k->value, "url") == 0) {
			free(n->urls);
			n->urls = get_urls(ld, x);
		} else if (strcmp(k->value, "user") == 0) {
			free(n->user);
			n->user = get_str(ld, x, "nats.user");
		} else if (strcmp(k->value, "password") == 0) {
			free(n->password);
			n->password = get_str(ld, x, "nats.password");
			password = x;
		} else if (strcmp(k->value, "creds") == 0) {
			free(n->creds);
			n->creds = get_str(ld, x, "nats.creds");
			creds = x;
		} else if (strcmp(k->value, "prefix") == 0) {
			free(n->prefix);
			n->prefix = get_str(ld, x, "nats.prefix");
		} else if (strcmp(k->value, "partitions") == 0) {
			char *end = NULL;
			long p = x->kind == YNODE_SCALAR ? strtol(x->value, &end, 10) : 0;
			if (!end || *end || p < 1 || p > 65536)
				cerr(ld, x, "nats.partitions: expected a count from 1 to 65536, the shards' cluster.partitions");
			else
				n->partitions = (uint32_t)p;
		} else {
			cerr(ld, k, "nats: unknown key '%s' (url, user, password, creds, prefix, partitions)", k->value);
		}
	}
	if (!ynode_get(v, "url"))
		cerr(ld, v, "nats.url: required, the cluster's NATS servers (nats://host:4222, or a list)");
	if (password && creds)
		cerr(ld, creds, "nats.creds: give user and password, or creds, not both");
	else if (password && !n->user)
		cerr(ld, password, "nats.password: needs nats.user");
}

static void load_root(struct loader *ld, const struct ynode *root, struct web_config *cfg)
{
	if (root->kind != YNODE_MAP) {
		cerr(ld, root, "expected a map with web, control (or nats) and log");
		return;
	}
	for (size_t i = 0; i < root->n; i++) {
		const struct ynode *k = ynode_key(root, i), *v = ynode_val(root, i);
		if (strcmp(k->value, "web") == 0) {
			load_web(ld, v, cfg);
		} else if (strcmp(k->value, "control") == 0) {
			load_control(ld, v, cfg);
		} else if (strcmp(k->value, "nats") == 0) {
			load_nats(ld, v, cfg);
		} else if (strcmp(k->value, "log") == 0) {
			const struct ynode *lv = v->kind == YNODE_MAP ? ynode_get(v, "level") : NULL;
			if (v->kind != YNODE_MAP || v->n != 1 || !lv || lv->kind != YNODE_SCALAR ||
			    (cfg->log_level = log_level_parse(lv->value)) < 0)
				cerr(ld, v, "log: expected {level: error|warning|info|debug}");
		} else {
			cerr(ld, k, "unknown key '%s' (web, control, nats, log)", k->value);
		}
	}
}

/* hearthd is reached one way: its control socket (by default the server layout's), or a
 * cluster's shards through NATS. */
static void check_transport(struct loader *ld, const struct ynode *root, const char *control_arg,
			    struct web_config *cfg)
{
	if (control_arg) {
		free(cfg->control);
		if (!(cfg->control = strdup(control_arg)))
			cerr(ld, root, "out of memory");
		if (ld->nats)
			cerr(ld, ld->nats, "nats: and --control are exclusive: hearth-web reaches hearthd through "
					   "its control socket or through a cluster's NATS servers, not both");
	} else if (ld->nats && ld->control_path) {
		cerr(ld, ld->nats, "nats: and control.path (line %d, column %d) are exclusive: hearth-web reaches "
				   "hearthd through its control socket or through a cluster's NATS servers, not both",
		     ld->control_path->line, ld->control_path->col);
	} else if (!ld->nats && !ld->control_path) {
		/* the server layout's socket, as before there was a choice */
		free(cfg->control);
		if (!(cfg->control = strdup(WEB_CONTROL_DEFAULT)))
			cerr(ld, root, "out of memory");
	}
}

struct web_config *web_config_load(const char *path, const char *control_arg, int *nerrors)
{
	struct loader ld = { .file = path };
	struct web_config *cfg = NULL;
	struct ynode *root = NULL;
	char msg[512];

	if (!(root = ynode_load_file(path, msg, sizeof(msg)))) {
		fprintf(stderr, "%s\n", msg);
		ld.errors++;
		goto out;
	}
	if (!(cfg = calloc(1, sizeof(*cfg))) || !(cfg->path = strdup(path))) {
		cerr(&ld, root, "out of memory");
		goto out;
	}
	/* the defaults of docs/WEB.md: the server layout */
	cfg->log_level = LOG_LEVEL_INFO;
	cfg->readonly = 1;
	cfg->refresh_ms = 30 * MS_PER_SECOND;
	cfg->top = WEB_TOP_DEFAULT;
	cfg->control_timeout_ms = 5 * MS_PER_SECOND;
	if (!(cfg->listen = strdup("127.0.0.1:8080"))) {
		cerr(&ld, root, "out of memory");
		goto out;
	}
	load_root(&ld, root, cfg);
	if (root->kind == YNODE_MAP)
		check_transport(&ld, root, control_arg, cfg);
out:
	ynode_free(root);
	*nerrors = ld.errors;
	if (ld.errors) {
		web_config_free(cfg);
		return NULL;
	}
	return cfg;
}

void web_config_free(struct web_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->path);
	free(cfg->listen);
	free(cfg->host);
	free(cfg->port);
	free(cfg->control);
	free(cfg->nats.urls);
	free(cfg->nats.user);
	free(cfg->nats.password);
	free(cfg->nats.creds);
	free(cfg->nats.prefix);
	for (size_t i = 0; i < cfg->nhosts; i++)
		free(cfg->hosts[i]);
	free(cfg->tls_cert);
	free(cfg->tls_key);
	free(cfg->users);
	free(cfg);
}
