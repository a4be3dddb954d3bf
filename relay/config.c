/*
 * relay.yaml (docs/RELAY.md) → struct relay_config. Like hearthd's loader it keeps
 * going after an error, printing each as file:line:col, so one --check run
 * shows every mistake; unknown keys are errors so a typo never goes unnoticed.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/curve.h"
#include "hearth/log.h"
#include "hearth/tz.h"
#include "hearth/units.h"
#include "hearth/yamltree.h"
#include "relay.h"

struct loader {
	const char *file;
	int errors;
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
	if (n->kind != YNODE_SCALAR) {
		cerr(ld, n, "%s: expected a string, found a %s", what, ynode_kind_name(n->kind));
		return NULL;
	}
	if (n->len == 0) {
		cerr(ld, n, "%s: must not be empty", what);
		return NULL;
	}
	return strdup(n->value);
}

static int get_duration(struct loader *ld, const struct ynode *n, const char *what, int64_t *ms)
{
	if (n->kind != YNODE_SCALAR || duration_parse(n->value, n->len, ms) < 0) {
		cerr(ld, n, "%s: expected a duration such as 500ms, 10s or 5m", what);
		return -1;
	}
	return 0;
}

/* "1/s", "30/m", "2/5s": at most N messages per period, spaced evenly. */
static int get_rate(struct loader *ld, const struct ynode *n, int64_t *interval_ms)
{
	char *slash, *end;
	long count;
	int64_t period;

	if (n->kind != YNODE_SCALAR || !(slash = strchr(n->value, '/')))
		goto bad;
	count = strtol(n->value, &end, 10);
	if (end != slash || count <= 0)
		goto bad;
	const char *p = slash + 1;
	if (isalpha((unsigned char)*p)) {
		char buf[32];
		snprintf(buf, sizeof(buf), "1%s", p);
		if (duration_parse(buf, strlen(buf), &period) < 0)
			goto bad;
	} else if (duration_parse(p, strlen(p), &period) < 0) {
		goto bad;
	}
	if (period <= 0)
		goto bad;
	*interval_ms = period / count;
	return 0;
bad:
	cerr(ld, n, "rate: expected N/period such as 1/s, 20/m or 3/10s");
	return -1;
}

/* A scalar or a sequence of scalars, each one of `allowed` when given. */
static void get_list(struct loader *ld, const struct ynode *n, const char *what,
		     const char *const *allowed, struct strlist *out)
{
	size_t count = n->kind == YNODE_SEQ ? n->n : 1;

	if (n->kind == YNODE_MAP) {
		cerr(ld, n, "%s: expected a list", what);
		return;
	}
	out->v = calloc(count, sizeof(*out->v));
	if (!out->v) {
		cerr(ld, n, "%s: out of memory", what);
		return;
	}
	for (size_t i = 0; i < count; i++) {
		const struct ynode *item = n->kind == YNODE_SEQ ? n->items[i] : n;
		char *s = get_str(ld, item, what);
		if (!s)
			continue;
		if (allowed) {
			size_t k = 0;
			while (allowed[k] && strcmp(allowed[k], s) != 0)
				k++;
			if (!allowed[k]) {
				cerr(ld, item, "%s: unknown value '%s'", what, s);
				free(s);
				continue;
			}
		}
		out->v[out->n++] = s;
	}
}

static void strlist_free(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* A CURVE key from one of hearthctl keygen's files (read at --check time too). */
static int load_key(struct loader *ld, const struct ynode *n, const char *which, char out[CURVE_KEY_Z85])
{
	struct herr err;

	if (n->kind != YNODE_SCALAR || n->len == 0) {
		cerr(ld, n, "expected the path of a key file");
		return -1;
	}
	if (curve_read_key(n->value, which, out, &err) < 0) {
		cerr(ld, n, "%s", err.msg);
		return -1;
	}
	return 0;
}

/* An IANA zone name (Asia/Shanghai), checked against the zone files now rather than at the first message. */
static struct tz *get_tz(struct loader *ld, const struct ynode *n, const char *what)
{
	struct herr err;
	struct tz *z;

	if (n->kind != YNODE_SCALAR || n->len == 0) {
		cerr(ld, n, "%s: expected a time zone name such as Asia/Shanghai or UTC", what);
		return NULL;
	}
	if (!(z = tz_load(n->value, &err)))
		cerr(ld, n, "%s: %s", what, err.msg);
	return z;
}

static const char *const locale_names[LOCALE_COUNT] = { "en", "zh" };

static int get_locale(struct loader *ld, const struct ynode *n, const char *what)
{
	for (int i = 0; n->kind == YNODE_SCALAR && i < LOCALE_COUNT; i++)
		if (strcmp(n->value, locale_names[i]) == 0)
			return i;
	cerr(ld, n, "%s: expected en or zh", what);
	return LOCALE_UNSET;
}

/* rule_labels: {zh: {rule: label, ...}, en: {...}} */
static void load_rule_labels(struct loader *ld, const struct ynode *n, struct relay_config *cfg)
{
	if (n->kind != YNODE_MAP) {
		cerr(ld, n, "rule_labels: expected a map of locale (en, zh) to {rule: label}");
		return;
	}
	for (size_t i = 0; i < n->n; i++) {
		const struct ynode *k = ynode_key(n, i), *v = ynode_val(n, i);
		int locale = get_locale(ld, k, "rule_labels");
		if (locale == LOCALE_UNSET)
			continue;
		if (v->kind != YNODE_MAP) {
			cerr(ld, v, "rule_labels.%s: expected a map of rule: label", k->value);
			continue;
		}
		struct labelmap *m = &cfg->rule_labels[locale];
		char **keys = realloc(m->keys.v, (m->keys.n + v->n + 1) * sizeof(char *));
		if (keys)
			m->keys.v = keys;
		char **values = realloc(m->values.v, (m->values.n + v->n + 1) * sizeof(char *));
		if (values)
			m->values.v = values;
		if (!keys || !values) {
			cerr(ld, v, "rule_labels: out of memory");
			continue;
		}
		for (size_t j = 0; j < v->n; j++) {
			char *rk = get_str(ld, ynode_key(v, j), "rule_labels key");
			char *rv = get_str(ld, ynode_val(v, j), "rule_labels value");
			if (!rk || !rv) {
				free(rk);
				free(rv);
				continue;
			}
			m->keys.v[m->keys.n++] = rk;
			m->values.v[m->values.n++] = rv;
		}
	}
}

static const char *const severities[] = { "info", "warning", "critical", NULL };
static const char *const kind_names[] = { "firing", "repeat", "resolved", NULL };

static void load_match(struct loader *ld, const struct ynode *m, struct target_conf *tc)
{
	if (m->kind != YNODE_MAP) {
		cerr(ld, m, "match: expected a map");
		return;
	}
	for (size_t i = 0; i < m->n; i++) {
		const struct ynode *k = ynode_key(m, i), *v = ynode_val(m, i);
		if (strcmp(k->value, "severity") == 0) {
			get_list(ld, v, "match.severity", severities, &tc->severity);
		} else if (strcmp(k->value, "rule") == 0) {
			get_list(ld, v, "match.rule", NULL, &tc->rule);
		} else if (strcmp(k->value, "owner") == 0) {
			get_list(ld, v, "match.owner", NULL, &tc->owner);
		} else if (strcmp(k->value, "customer") == 0) {
			get_list(ld, v, "match.customer", NULL, &tc->customer);
		} else if (strcmp(k->value, "labels") == 0) {
			if (v->kind != YNODE_MAP) {
				cerr(ld, v, "match.labels: expected a map of label: value");
				continue;
			}
			tc->label_keys.v = calloc(v->n + 1, sizeof(char *));
			tc->label_values.v = calloc(v->n + 1, sizeof(char *));
			if (!tc->label_keys.v || !tc->label_values.v) {
				cerr(ld, v, "match.labels: out of memory");
				continue;
			}
			for (size_t j = 0; j < v->n; j++) {
				char *lk = get_str(ld, ynode_key(v, j), "match.labels key");
				char *lv = get_str(ld, ynode_val(v, j), "match.labels value");
				if (!lk || !lv) {
					free(lk);
					free(lv);
					continue;
				}
				tc->label_keys.v[tc->label_keys.n++] = lk;
				tc->label_values.v[tc->label_values.n++] = lv;
			}
		} else {
			cerr(ld, k, "match: unknown key '%s' (severity, rule, owner, customer, labels)",
			     k->value);
		}
	}
}

static int valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > RELAY_NAME_MAX || s[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("_-.", s[i]))
			return 0;
	return 1;
}

/* hearth-web's base URL (docs/WEB.md), without a trailing slash: links append /c/<id>. */
static char *get_web_url(struct loader *ld, const struct ynode *v)
{
	char *url = get_str(ld, v, "web_url");
	size_t n = url ? strlen(url) : 0;

	if (url && strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
		cerr(ld, v, "web_url: expected http:// or https://");
	while (n > 0 && url[n - 1] == '/')
		url[--n] = '\0';
	return url;
}

static void load_target(struct loader *ld, const struct ynode *t, struct target_conf *tc)
{
	const struct ynode *type_node = NULL, *secret_node = NULL, *format_node = NULL;

	tc->kinds = KIND_ALL;
	tc->backoff_ms = 1000;
	tc->backoff_max_ms = 5 * MS_PER_MINUTE;
	tc->connect_timeout_ms = RELAY_CONNECT_TIMEOUT_MS;
	tc->timeout_ms = RELAY_TOTAL_TIMEOUT_MS;
	tc->queue_max = RELAY_QUEUE_MAX;
	tc->locale = LOCALE_UNSET;
	if (t->kind != YNODE_MAP) {
		cerr(ld, t, "targets: each target is a map (name, type, url, ...)");
		return;
	}
	for (size_t i = 0; i < t->n; i++) {
		const struct ynode *k = ynode_key(t, i), *v = ynode_val(t, i);
		const char *key = k->value;
		if (strcmp(key, "name") == 0) {
			tc->name = get_str(ld, v, "name");
			if (tc->name && !valid_name(tc->name))
				cerr(ld, v, "name: '%s' must be 1..%d of letters, digits, '_', '-', '.'",
				     tc->name, RELAY_NAME_MAX);
		} else if (strcmp(key, "type") == 0) {
			type_node = v;
			char *s = get_str(ld, v, "type");
			if (s && !(tc->type = target_type_find(s)))
				cerr(ld, v, "type: unknown '%s' (%s)", s, target_type_names());
			free(s);
		} else if (strcmp(key, "url") == 0) {
			tc->url = get_str(ld, v, "url");
			if (tc->url && strncmp(tc->url, "http://", 7) != 0 &&
			    strncmp(tc->url, "https://", 8) != 0)
				cerr(ld, v, "url: expected http:// or https://");
		} else if (strcmp(key, "secret") == 0) {
			secret_node = v;
			tc->secret = get_str(ld, v, "secret");
		} else if (strcmp(key, "template") == 0) {
			tc->template = get_str(ld, v, "template");
		} else if (strcmp(key, "match") == 0) {
			load_match(ld, v, tc);
		} else if (strcmp(key, "kinds") == 0) {
			struct strlist l = { 0 };
			get_list(ld, v, "kinds", kind_names, &l);
			tc->kinds = 0;
			for (size_t j = 0; j < l.n; j++)
				for (int b = 0; kind_names[b]; b++)
					if (strcmp(l.v[j], kind_names[b]) == 0)
						tc->kinds |= 1u << b;
			if (v->kind == YNODE_SEQ && v->n == 0)
				cerr(ld, v, "kinds: name at least one of firing, repeat, resolved");
			strlist_free(&l);
		} else if (strcmp(key, "group_wait") == 0) {
			get_duration(ld, v, "group_wait", &tc->group_wait_ms);
		} else if (strcmp(key, "rate") == 0) {
			get_rate(ld, v, &tc->rate_interval_ms);
		} else if (strcmp(key, "backoff") == 0) {
			if (get_duration(ld, v, "backoff", &tc->backoff_ms) == 0 && tc->backoff_ms <= 0)
				cerr(ld, v, "backoff: must be positive");
		} else if (strcmp(key, "backoff_max") == 0) {
			get_duration(ld, v, "backoff_max", &tc->backoff_max_ms);
		} else if (strcmp(key, "connect_timeout") == 0) {
			get_duration(ld, v, "connect_timeout", &tc->connect_timeout_ms);
		} else if (strcmp(key, "timeout") == 0) {
			get_duration(ld, v, "timeout", &tc->timeout_ms);
		} else if (strcmp(key, "queue_max") == 0) {
			char *end = NULL;
			long q = v->kind == YNODE_SCALAR ? strtol(v->value, &end, 10) : 0;
			if (!end || *end || q < 1 || q > 1000000)
				cerr(ld, v, "queue_max: expected a count from 1 to 1000000");
			else
				tc->queue_max = (size_t)q;
		} else if (strcmp(key, "format") == 0) {
			format_node = v;
		} else if (strcmp(key, "ca_file") == 0) {
			tc->ca_file = get_str(ld, v, "ca_file");
		} else if (strcmp(key, "timezone") == 0) {
			tz_free(tc->tz_own);
			tc->tz_own = get_tz(ld, v, "timezone");
		} else if (strcmp(key, "locale") == 0) {
			tc->locale = get_locale(ld, v, "locale");
		} else if (strcmp(key, "hold_firing") == 0) {
			get_duration(ld, v, "hold_firing", &tc->hold_firing_ms);
		} else if (strcmp(key, "web_url") == 0) {
			free(tc->web_url_own);
			tc->web_url_own = get_web_url(ld, v);
		} else {
			cerr(ld, k, "target: unknown key '%s'", key);
		}
	}
	if (!tc->name)
		cerr(ld, t, "target: missing 'name'");
	if (!type_node)
		cerr(ld, t, "target%s%s: missing 'type'", tc->name ? " " : "", tc->name ? tc->name : "");
	if (!tc->url)
		cerr(ld, t, "target%s%s: missing 'url'", tc->name ? " " : "", tc->name ? tc->name : "");
	if (format_node && tc->type) {
		/* judged after the loop: `format` may come before `type` */
		if (format_node->kind != YNODE_SCALAR ||
		    (tc->format = target_format_find(tc->type, format_node->value)) < 0) {
			char allowed[128] = "";
			for (int i = 0; tc->type->formats[i]; i++)
				snprintf(allowed + strlen(allowed), sizeof(allowed) - strlen(allowed), "%s%s",
					 i ? ", " : "", tc->type->formats[i]);
			cerr(ld, format_node, "format: type %s takes %s", tc->type->name, allowed);
			tc->format = 0;
		}
	}
	if (secret_node && tc->type && !tc->type->needs_secret_ok)
		cerr(ld, secret_node, "secret: type %s does not sign its requests", tc->type->name);
	if (tc->backoff_max_ms < tc->backoff_ms)
		tc->backoff_max_ms = tc->backoff_ms;
}

static void load_root(struct loader *ld, const struct ynode *root, struct relay_config *cfg)
{
	const struct ynode *targets = NULL;

	if (root->kind != YNODE_MAP) {
		cerr(ld, root, "expected a map with source, state and targets");
		return;
	}
	for (size_t i = 0; i < root->n; i++) {
		const struct ynode *k = ynode_key(root, i), *v = ynode_val(root, i);
		if (strcmp(k->value, "source") == 0) {
			if (v->kind != YNODE_MAP) {
				cerr(ld, v, "source: expected a map (publish, control)");
				continue;
			}
			const struct ynode *server_key = NULL, *client_key = NULL;
			for (size_t j = 0; j < v->n; j++) {
				const struct ynode *sk = ynode_key(v, j), *sv = ynode_val(v, j);
				if (strcmp(sk->value, "publish") == 0) {
					cfg->publish = get_str(ld, sv, "source.publish");
				} else if (strcmp(sk->value, "control") == 0) {
					cfg->control = get_str(ld, sv, "source.control");
				} else if (strcmp(sk->value, "nats") == 0) {
					cfg->nats = get_str(ld, sv, "source.nats");
				} else if (strcmp(sk->value, "user") == 0) {
					cfg->nats_user = get_str(ld, sv, "source.user");
				} else if (strcmp(sk->value, "password") == 0) {
					cfg->nats_password = get_str(ld, sv, "source.password");
				} else if (strcmp(sk->value, "creds") == 0) {
					cfg->nats_creds = get_str(ld, sv, "source.creds");
				} else if (strcmp(sk->value, "stream") == 0) {
					cfg->nats_stream = get_str(ld, sv, "source.stream");
				} else if (strcmp(sk->value, "prefix") == 0) {
					cfg->nats_prefix = get_str(ld, sv, "source.prefix");
				} else if (strcmp(sk->value, "server_key_file") == 0) {
					load_key(ld, sv, "public", cfg->curve_server);
					server_key = sv;
				} else if (strcmp(sk->value, "client_key_file") == 0) {
					if (load_key(ld, sv, "public", cfg->curve_public) == 0)
						load_key(ld, sv, "secret", cfg->curve_secret);
					client_key = sv;
				} else {
					cerr(ld, sk, "source: unknown key '%s' (publish, control, server_key_file, "
					     "client_key_file; or nats, user, password, creds, stream, prefix)", sk->value);
				}
			}
			if (!server_key != !client_key)
				cerr(ld, server_key ? server_key : client_key,
				     "source: CURVE needs both server_key_file and client_key_file");
			cfg->curve = server_key && client_key;
		} else if (strcmp(k->value, "state") == 0) {
			cfg->state_dir = get_str(ld, v, "state");
		} else if (strcmp(k->value, "log") == 0) {
			const struct ynode *lv = v->kind == YNODE_MAP ? ynode_get(v, "level") : NULL;
			if (v->kind != YNODE_MAP || v->n != 1 || !lv || lv->kind != YNODE_SCALAR ||
			    (cfg->log_level = log_level_parse(lv->value)) < 0)
				cerr(ld, v, "log: expected {level: error|warning|info|debug}");
		} else if (strcmp(k->value, "targets") == 0) {
			targets = v;
		} else if (strcmp(k->value, "timezone") == 0) {
			tz_free(cfg->tz);
			cfg->tz = get_tz(ld, v, "timezone");
		} else if (strcmp(k->value, "locale") == 0) {
			cfg->locale = get_locale(ld, v, "locale");
		} else if (strcmp(k->value, "rule_labels") == 0) {
			load_rule_labels(ld, v, cfg);
		} else if (strcmp(k->value, "web_url") == 0) {
			free(cfg->web_url);
			cfg->web_url = get_web_url(ld, v);
		} else {
			cerr(ld, k, "unknown key '%s' (source, state, log, timezone, locale, rule_labels, web_url, "
			     "targets)", k->value);
		}
	}
	/* times in messages: the system's zone unless the file names one */
	if (!cfg->tz && !(cfg->tz = tz_system()))
		cerr(ld, root, "out of memory");
	if (cfg->nats) {
		/* the alerts stream replaces both: publish carries the URLs for the log lines */
		if (cfg->publish || cfg->control)
			cerr(ld, root, "source: nats replaces publish and control; give one or the other");
		if (!cfg->nats_creds && !(cfg->nats_user && cfg->nats_password))
			cerr(ld, root, "source.nats needs user and password, or creds");
		free(cfg->publish);
		free(cfg->control);
		cfg->publish = strdup(cfg->nats);
		cfg->control = strdup("");
		if (!cfg->nats_stream)
			cfg->nats_stream = strdup("HEARTH_ALERTS");
		if (!cfg->nats_prefix)
			cfg->nats_prefix = strdup("hearth");
		if (!cfg->publish || !cfg->control || !cfg->nats_stream || !cfg->nats_prefix)
			cerr(ld, root, "out of memory");
	}
	if (!cfg->publish)
		cerr(ld, root, "missing source.publish");
	if (!cfg->control)
		cerr(ld, root, "missing source.control");
	if (!cfg->state_dir)
		cerr(ld, root, "missing state");
	if (!targets) {
		cerr(ld, root, "missing targets");
		return;
	}
	if (targets->kind != YNODE_SEQ || targets->n == 0) {
		cerr(ld, targets, "targets: expected a non-empty list");
		return;
	}
	cfg->targets = calloc(targets->n, sizeof(*cfg->targets));
	if (!cfg->targets) {
		cerr(ld, targets, "out of memory");
		return;
	}
	cfg->ntargets = targets->n;
	for (size_t i = 0; i < targets->n; i++) {
		struct target_conf *tc = &cfg->targets[i];
		load_target(ld, targets->items[i], tc);
		/* the target's own choice, else the file's, else what its service's users read */
		if (tc->locale == LOCALE_UNSET)
			tc->locale = cfg->locale != LOCALE_UNSET ? cfg->locale : tc->type ? tc->type->locale : LOCALE_EN;
		tc->tz = tc->tz_own ? tc->tz_own : cfg->tz;
		tc->rule_labels = &cfg->rule_labels[tc->locale];
		tc->web_url = tc->web_url_own ? tc->web_url_own : cfg->web_url;
		for (size_t j = 0; j < i && cfg->targets[i].name; j++)
			if (cfg->targets[j].name && strcmp(cfg->targets[j].name, cfg->targets[i].name) == 0)
				cerr(ld, ynode_get(targets->items[i], "name"),
				     "name: '%s' is used by another target", cfg->targets[i].name);
	}
}

struct relay_config *relay_config_load(const char *path, int *nerrors)
{
	struct loader ld = { .file = path };
	struct relay_config *cfg = NULL;
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
	cfg->log_level = LOG_LEVEL_INFO;
	cfg->locale = LOCALE_UNSET;
	load_root(&ld, root, cfg);
out:
	ynode_free(root);
	*nerrors = ld.errors;
	if (ld.errors) {
		relay_config_free(cfg);
		return NULL;
	}
	return cfg;
}

static void target_conf_free(struct target_conf *tc)
{
	free(tc->name);
	free(tc->url);
	free(tc->secret);
	free(tc->template);
	free(tc->ca_file);
	tz_free(tc->tz_own);
	free(tc->web_url_own);
	strlist_free(&tc->severity);
	strlist_free(&tc->rule);
	strlist_free(&tc->owner);
	strlist_free(&tc->customer);
	strlist_free(&tc->label_keys);
	strlist_free(&tc->label_values);
}

void relay_config_free(struct relay_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->ntargets; i++)
		target_conf_free(&cfg->targets[i]);
	free(cfg->targets);
	free(cfg->path);
	free(cfg->publish);
	free(cfg->control);
	free(cfg->nats);
	free(cfg->nats_user);
	if (cfg->nats_password)
		explicit_bzero(cfg->nats_password, strlen(cfg->nats_password));
	free(cfg->nats_password);
	free(cfg->nats_creds);
	free(cfg->nats_stream);
	free(cfg->nats_prefix);
	free(cfg->state_dir);
	tz_free(cfg->tz);
	free(cfg->web_url);
	for (int i = 0; i < LOCALE_COUNT; i++) {
		strlist_free(&cfg->rule_labels[i].keys);
		strlist_free(&cfg->rule_labels[i].values);
	}
	explicit_bzero(cfg->curve_secret, sizeof(cfg->curve_secret));
	free(cfg);
}
