/*
 * PROTOCOL.md §6 configuration: a walk over the positioned YAML tree. Each section is
 * a small function; unknown keys, wrong shapes, bad durations and sizes are
 * collected as "file:line:col: message" lines (OpenBSD parse.y style) so an
 * operator sees every mistake at once.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/cluster.h"
#include "hearth/config.h"
#include "hearth/log.h"
#include "hearth/units.h"
#include "hearth/yamltree.h"

struct loader {
	const char *file;
	char *errors;
	size_t size, used;
	int count;
};

static void __attribute__((format(printf, 3, 4)))
report(struct loader *ld, const struct ynode *at, const char *fmt, ...)
{
	va_list ap;
	int n;

	ld->count++;
	if (ld->used + 1 >= ld->size)
		return;
	n = snprintf(ld->errors + ld->used, ld->size - ld->used, "%s:%d:%d: ", ld->file,
		     at ? at->line : 1, at ? at->col : 1);
	if (n > 0 && (size_t)n < ld->size - ld->used)
		ld->used += (size_t)n;
	va_start(ap, fmt);
	n = vsnprintf(ld->errors + ld->used, ld->size - ld->used, fmt, ap);
	va_end(ap);
	if (n > 0)
		ld->used += (size_t)n < ld->size - ld->used ? (size_t)n : ld->size - ld->used - 1;
	if (ld->used + 1 < ld->size) {
		ld->errors[ld->used++] = '\n';
		ld->errors[ld->used] = '\0';
	}
}

const char *severity_name(enum severity severity)
{
	switch (severity) {
	case SEVERITY_INFO: return "info";
	case SEVERITY_WARNING: return "warning";
	case SEVERITY_CRITICAL: return "critical";
	}
	return "?";
}

int name_is_valid(const char *s, size_t len)
{
	if (len < 1 || len > 32 || s[0] < 'a' || s[0] > 'z')
		return 0;
	for (size_t i = 1; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			return 0;
	}
	return 1;
}

/* Reports keys of map that are not in allowed (NULL-terminated). */
static int expect_map(struct loader *ld, const struct ynode *node, const char *where,
		      const char *const *allowed)
{
	if (node->kind != YNODE_MAP) {
		report(ld, node, "%s must be a mapping, not %s", where, ynode_kind_name(node->kind));
		return -1;
	}
	for (size_t i = 0; i < node->n; i++) {
		const struct ynode *key = ynode_key(node, i);
		int known = 0;
		for (const char *const *a = allowed; a && *a; a++)
			known |= strcmp(key->value, *a) == 0;
		for (size_t j = 0; j < i; j++)
			if (strcmp(ynode_key(node, j)->value, key->value) == 0) {
				report(ld, key, "duplicate key '%s' in %s", key->value, where);
				known = 1;
			}
		if (!known)
			report(ld, key, "unknown key '%s' in %s", key->value, where);
	}
	return 0;
}

static int get_scalar(struct loader *ld, const struct ynode *node, const char *what)
{
	if (node->kind != YNODE_SCALAR) {
		report(ld, node, "%s must be a value, not %s", what, ynode_kind_name(node->kind));
		return -1;
	}
	return 0;
}

static void set_string(struct loader *ld, const struct ynode *node, const char *what, char **out)
{
	if (get_scalar(ld, node, what) < 0)
		return;
	char *copy = strdup(node->value);
	if (!copy) {
		report(ld, node, "out of memory");
		return;
	}
	free(*out);
	*out = copy;
}

static void set_duration(struct loader *ld, const struct ynode *node, const char *what, int64_t *out)
{
	if (get_scalar(ld, node, what) < 0)
		return;
	if (duration_parse(node->value, node->len, out) < 0)
		report(ld, node, "%s: bad duration '%s' (use e.g. 500ms, 90s, 15m, 12h, 30d, 2w, 1d12h)",
		       what, node->value);
}

static void set_size(struct loader *ld, const struct ynode *node, const char *what, uint64_t *out)
{
	if (get_scalar(ld, node, what) < 0)
		return;
	if (size_parse(node->value, node->len, out) < 0)
		report(ld, node, "%s: bad size '%s' (use e.g. 64MiB, 1GiB or plain bytes)",
		       what, node->value);
}

static void free_strings(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

static void set_string_list(struct loader *ld, const struct ynode *node, const char *what,
			    char ***out, size_t *nout)
{
	char **list;

	if (node->kind != YNODE_SEQ) {
		report(ld, node, "%s must be a list, not %s", what, ynode_kind_name(node->kind));
		return;
	}
	list = calloc(node->n + 1, sizeof(*list));
	if (!list) {
		report(ld, node, "out of memory");
		return;
	}
	for (size_t i = 0; i < node->n; i++) {
		set_string(ld, node->items[i], what, &list[i]);
	}
	free_strings(*out, *nout);
	*out = list;
	*nout = node->n;
}

static void load_store(struct loader *ld, struct config *cfg, const struct ynode *node)
{
	static const char *const keys[] = { "path", "map_size", "max_size", NULL };
	const struct ynode *v;

	if (expect_map(ld, node, "store", keys) < 0)
		return;
	if ((v = ynode_get(node, "path")))
		set_string(ld, v, "store.path", &cfg->store_path);
	if ((v = ynode_get(node, "map_size")))
		set_size(ld, v, "store.map_size", &cfg->map_size);
	if ((v = ynode_get(node, "max_size")))
		set_size(ld, v, "store.max_size", &cfg->max_size);
	if (cfg->map_size < (1u << 20))
		report(ld, ynode_get(node, "map_size") ? ynode_get(node, "map_size") : node,
		       "store.map_size must be at least 1MiB");
	if (cfg->max_size < cfg->map_size)
		report(ld, ynode_get(node, "max_size") ? ynode_get(node, "max_size") : node,
		       "store.max_size must not be smaller than store.map_size");
}

static void load_ingest(struct loader *ld, struct config *cfg, const struct ynode *node)
{
	static const char *const keys[] = { "listen", "max_future", NULL };
	const struct ynode *v;

	if (expect_map(ld, node, "ingest", keys) < 0)
		return;
	if ((v = ynode_get(node, "listen")))
		set_string_list(ld, v, "ingest.listen", &cfg->ingest_listen, &cfg->ningest_listen);
	if ((v = ynode_get(node, "max_future")))
		set_duration(ld, v, "ingest.max_future", &cfg->max_future_ms);
}

static void load_publish(struct loader *ld, struct config *cfg, const struct ynode *node)
{
	static const char *const keys[] = { "listen", "heartbeat", "retain", NULL };
	const struct ynode *v;

	if (expect_map(ld, node, "publish", keys) < 0)
		return;
	if ((v = ynode_get(node, "listen")))
		set_string_list(ld, v, "publish.listen", &cfg->publish_listen, &cfg->npublish_listen);
	if ((v = ynode_get(node, "heartbeat"))) {
		set_duration(ld, v, "publish.heartbeat", &cfg->heartbeat_ms);
		if (cfg->heartbeat_ms < 10)
			report(ld, v, "publish.heartbeat must be at least 10ms");
	}
	if ((v = ynode_get(node, "retain")))
		set_duration(ld, v, "publish.retain", &cfg->retain_ms);
}

static void load_control(struct loader *ld, struct config *cfg, const struct ynode *node)
{
	static const char *const keys[] = { "path", "mode", "admin_groups", NULL };
	const struct ynode *v;

	if (expect_map(ld, node, "control", keys) < 0)
		return;
	if ((v = ynode_get(node, "path")))
		set_string(ld, v, "control.path", &cfg->control_path);
	if ((v = ynode_get(node, "mode")) && get_scalar(ld, v, "control.mode") == 0) {
		char *end;
		errno = 0;
		unsigned long mode = strtoul(v->value, &end, 8);
		if (errno || end == v->value || *end || mode > 0777)
			report(ld, v, "control.mode: bad file mode '%s' (use octal, e.g. \"0660\")",
			       v->value);
		else
			cfg->control_mode = (unsigned)mode;
	}
	if ((v = ynode_get(node, "admin_groups")))
		set_string_list(ld, v, "control.admin_groups", &cfg->admin_groups,
				&cfg->nadmin_groups);
}

static void load_evaluation(struct loader *ld, struct config *cfg, const struct ynode *node)
{
	static const char *const keys[] = { "interval", "load_idle", "flap_window", NULL };
	const struct ynode *v;

	if (expect_map(ld, node, "evaluation", keys) < 0)
		return;
	if ((v = ynode_get(node, "interval"))) {
		set_duration(ld, v, "evaluation.interval", &cfg->eval_interval_ms);
		if (cfg->eval_interval_ms < 10)
			report(ld, v, "evaluation.interval must be at least 10ms");
	}
	if ((v = ynode_get(node, "load_idle"))) {
		set_duration(ld, v, "evaluation.load_idle", &cfg->load_idle_ms);
		if (cfg->load_idle_ms < 10)
			report(ld, v, "evaluation.load_idle must be at least 10ms");
	}
	if ((v = ynode_get(node, "flap_window")))
		set_duration(ld, v, "evaluation.flap_window", &cfg->flap_window_ms);
}

static void load_log(struct loader *ld, struct config *cfg, const struct ynode *node)
{
	static const char *const keys[] = { "level", NULL };
	const struct ynode *v;

	if (expect_map(ld, node, "log", keys) < 0)
		return;
	if ((v = ynode_get(node, "level")) && get_scalar(ld, v, "log.level") == 0) {
		int level = log_level_parse(v->value);
		if (level < 0)
			report(ld, v, "log.level: unknown level '%s' (error, warning, info, debug)",
			       v->value);
		else
			cfg->log_level = level;
	}
}

static int check_name(struct loader *ld, const struct ynode *node, const char *what)
{
	if (node->kind != YNODE_SCALAR || !name_is_valid(node->value, node->len)) {
		report(ld, node, "%s '%s' must match [a-z][a-z0-9_]{0,31}", what,
		       node->kind == YNODE_SCALAR ? node->value : "…");
		return -1;
	}
	return 0;
}

static void load_events(struct loader *ld, struct config *cfg, const struct ynode *node)
{
	static const char *const keys[] = { "sets", "cases", NULL };
	static const char *const case_keys[] = { "open", "close", "due", NULL };
	const struct ynode *sets, *cases;

	if (expect_map(ld, node, "events", keys) < 0)
		return;
	sets = ynode_get(node, "sets");
	if (sets && sets->kind != YNODE_MAP) {
		report(ld, sets, "events.sets must be a mapping of set name to a list of types");
	} else if (sets) {
		cfg->sets = calloc(sets->n, sizeof(*cfg->sets));
		for (size_t i = 0; cfg->sets && i < sets->n; i++) {
			const struct ynode *key = ynode_key(sets, i), *list = ynode_val(sets, i);
			struct config_set *set = &cfg->sets[cfg->nsets++];
			check_name(ld, key, "set name");
			set->name = strdup(key->value);
			set_string_list(ld, list, "events.sets entry", &set->types, &set->ntypes);
			for (size_t j = 0; list->kind == YNODE_SEQ && j < list->n; j++)
				check_name(ld, list->items[j], "event type");
			for (size_t j = 0; j < i; j++)
				if (strcmp(ynode_key(sets, j)->value, key->value) == 0)
					report(ld, key, "duplicate set '%s'", key->value);
		}
	}
	cases = ynode_get(node, "cases");
	if (cases && cases->kind != YNODE_MAP) {
		report(ld, cases, "events.cases must be a mapping of case name to {open, close, due}");
	} else if (cases) {
		cfg->cases = calloc(cases->n, sizeof(*cfg->cases));
		for (size_t i = 0; cfg->cases && i < cases->n; i++) {
			const struct ynode *key = ynode_key(cases, i), *def = ynode_val(cases, i), *v;
			struct config_case *c = &cfg->cases[cfg->ncases++];
			check_name(ld, key, "case name");
			c->name = strdup(key->value);
			for (size_t j = 0; j < i; j++)
				if (strcmp(ynode_key(cases, j)->value, key->value) == 0)
					report(ld, key, "duplicate case '%s'", key->value);
			if (expect_map(ld, def, "a case", case_keys) < 0)
				continue;
			if ((v = ynode_get(def, "open")) && check_name(ld, v, "event type") == 0)
				set_string(ld, v, "open", &c->open);
			if ((v = ynode_get(def, "close")) && check_name(ld, v, "event type") == 0)
				set_string(ld, v, "close", &c->close);
			if ((v = ynode_get(def, "due")) && check_name(ld, v, "attr name") == 0)
				set_string(ld, v, "due", &c->due);
			if (!c->open || !c->close)
				report(ld, def, "case '%s' needs both 'open' and 'close' event types",
				       c->name);
		}
	}
	for (size_t i = 0; i < cfg->nsets; i++)
		for (size_t j = 0; j < cfg->ncases; j++)
			if (cfg->sets[i].name && cfg->cases[j].name &&
			    strcmp(cfg->sets[i].name, cfg->cases[j].name) == 0)
				report(ld, node, "'%s' is both a set and a case", cfg->sets[i].name);
}

static void set_pos(const struct ynode *node, struct config_pos *pos)
{
	pos->line = node->line;
	pos->col = node->col;
	pos->quoted = !node->plain;
}

static void load_rule(struct loader *ld, struct config *cfg, const struct ynode *node,
		      struct config_rule *rule)
{
	static const char *const keys[] = { "name", "when", "for", "severity", "repeat",
					    "summary", "labels", NULL };
	const struct ynode *v;

	(void)cfg;
	rule->severity = SEVERITY_WARNING;
	if (expect_map(ld, node, "a rule", keys) < 0)
		return;
	if ((v = ynode_get(node, "name")) && check_name(ld, v, "rule name") == 0)
		set_string(ld, v, "name", &rule->name);
	else if (!v)
		report(ld, node, "a rule needs a 'name'");
	if ((v = ynode_get(node, "when"))) {
		set_string(ld, v, "when", &rule->when);
		set_pos(v, &rule->when_pos);
	} else {
		report(ld, node, "rule '%s' needs a 'when' expression",
		       rule->name ? rule->name : "?");
	}
	if ((v = ynode_get(node, "for")))
		set_duration(ld, v, "for", &rule->for_ms);
	if ((v = ynode_get(node, "repeat")))
		set_duration(ld, v, "repeat", &rule->repeat_ms);
	if ((v = ynode_get(node, "severity")) && get_scalar(ld, v, "severity") == 0) {
		if (strcmp(v->value, "info") == 0)
			rule->severity = SEVERITY_INFO;
		else if (strcmp(v->value, "warning") == 0)
			rule->severity = SEVERITY_WARNING;
		else if (strcmp(v->value, "critical") == 0)
			rule->severity = SEVERITY_CRITICAL;
		else
			report(ld, v, "severity must be info, warning or critical, not '%s'", v->value);
	}
	if ((v = ynode_get(node, "summary"))) {
		set_string(ld, v, "summary", &rule->summary);
		set_pos(v, &rule->summary_pos);
	}
	if ((v = ynode_get(node, "labels"))) {
		if (v->kind != YNODE_MAP) {
			report(ld, v, "labels must be a mapping of name to value");
			return;
		}
		rule->labels = calloc(v->n, sizeof(*rule->labels));
		for (size_t i = 0; rule->labels && i < v->n; i++) {
			struct config_label *label = &rule->labels[rule->nlabels++];
			check_name(ld, ynode_key(v, i), "label name");
			set_string(ld, ynode_key(v, i), "label", &label->key);
			set_string(ld, ynode_val(v, i), "label value", &label->value);
		}
	}
}

static void load_rules(struct loader *ld, struct config *cfg, const struct ynode *node)
{
	if (node->kind != YNODE_SEQ) {
		report(ld, node, "rules must be a list, not %s", ynode_kind_name(node->kind));
		return;
	}
	cfg->rules = calloc(node->n ? node->n : 1, sizeof(*cfg->rules));
	if (!cfg->rules) {
		report(ld, node, "out of memory");
		return;
	}
	for (size_t i = 0; i < node->n; i++) {
		struct config_rule *rule = &cfg->rules[cfg->nrules++];
		load_rule(ld, cfg, node->items[i], rule);
		for (size_t j = 0; rule->name && j < i; j++)
			if (cfg->rules[j].name && strcmp(cfg->rules[j].name, rule->name) == 0)
				report(ld, ynode_get(node->items[i], "name"),
				       "duplicate rule name '%s'", rule->name);
	}
}

static void load_curve(struct loader *ld, struct config *cfg, const struct ynode *node)
{
	static const char *const keys[] = { "secret_key_file", "public_key_file", "authorized_keys", NULL };
	const struct ynode *v;

	if (expect_map(ld, node, "curve", keys) < 0)
		return;
	if ((v = ynode_get(node, "secret_key_file")))
		set_string(ld, v, "curve.secret_key_file", &cfg->curve_secret_key_file);
	if ((v = ynode_get(node, "public_key_file")))
		set_string(ld, v, "curve.public_key_file", &cfg->curve_public_key_file);
	if ((v = ynode_get(node, "authorized_keys")))
		set_string(ld, v, "curve.authorized_keys", &cfg->curve_authorized_keys);
	if (!cfg->curve_secret_key_file || !cfg->curve_authorized_keys)
		report(ld, node, "curve needs secret_key_file and authorized_keys");
}

/* tcp://127.0.0.1:… and friends stay on this host; anything else crosses a network. */
int endpoint_is_exposed(const char *endpoint)
{
	const char *host, *end;
	size_t len;

	if (strncmp(endpoint, "tcp://", 6) != 0)
		return 0;
	host = endpoint + 6;
	end = strrchr(host, ':');
	len = end ? (size_t)(end - host) : strlen(host);
	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		host++;
		len -= 2;
	}
	if ((len == 9 && strncmp(host, "localhost", 9) == 0) || (len == 3 && strncmp(host, "::1", 3) == 0))
		return 0;
	return !(len >= 4 && strncmp(host, "127.", 4) == 0);
}

/* Plain TCP beyond loopback carries customer data in clear: refuse unless told. */
static void check_exposed(struct loader *ld, const struct config *cfg, const struct ynode *list)
{
	if (!list || list->kind != YNODE_SEQ || cfg->curve_secret_key_file || cfg->insecure)
		return;
	for (size_t i = 0; i < list->n; i++)
		if (list->items[i]->kind == YNODE_SCALAR && endpoint_is_exposed(list->items[i]->value))
			report(ld, list->items[i], "'%s' is reachable from other hosts: configure 'curve' "
			       "(or set 'insecure: true' to send in clear)", list->items[i]->value);
}

/* ---- cluster: (PROTOCOL.md §9.1) ------------------------------------------------------ */

void cluster_config_free(struct cluster_config *cc)
{
	if (!cc)
		return;
	free_strings(cc->servers, cc->nservers);
	free(cc->user);
	free(cc->password);
	free(cc->creds);
	free(cc->shard);
	free(cc->owns);
	free(cc->prefix);
	free(cc->events_stream);
	free(cc->alerts_stream);
	free(cc);
}

static int cluster_uint(struct loader *ld, const struct ynode *node, const char *what,
			unsigned long min, unsigned long max, unsigned long *out)
{
	char *end;

	if (get_scalar(ld, node, what) < 0)
		return -1;
	errno = 0;
	*out = strtoul(node->value, &end, 10);
	if (errno || end == node->value || *end || node->value[0] == '-' || *out < min || *out > max) {
		report(ld, node, "%s must be a whole number from %lu to %lu, not '%s'", what, min, max,
		       node->value);
		return -1;
	}
	return 0;
}

/* Stream names and the subject prefix end up in subjects and API paths: no dots, no wildcards. */
static void cluster_token(struct loader *ld, const struct ynode *node, const char *what, char **out)
{
	set_string(ld, node, what, out);
	if (!*out)
		return;
	for (const char *p = *out; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '_' || *p == '-')) {
			report(ld, node, "%s '%s' may hold only letters, digits, '_' and '-'", what, *out);
			return;
		}
}

static void load_cluster_owns(struct loader *ld, struct cluster_config *cc, const struct ynode *v)
{
	if (v->kind != YNODE_SEQ || v->n == 0) {
		report(ld, v, "cluster.owns must be a non-empty list of partition numbers");
		return;
	}
	if (!(cc->owns = calloc(v->n, sizeof(*cc->owns)))) {
		report(ld, v, "out of memory");
		return;
	}
	for (size_t i = 0; i < v->n; i++) {
		unsigned long p;
		if (cluster_uint(ld, v->items[i], "a partition of cluster.owns", 0, 1023, &p) < 0)
			continue;
		for (size_t j = 0; j < cc->nowns; j++)
			if (cc->owns[j] == p)
				report(ld, v->items[i], "partition %lu is listed twice in cluster.owns", p);
		cc->owns[cc->nowns++] = (uint32_t)p;
	}
}

static void load_cluster(struct loader *ld, struct config *cfg, const struct ynode *node)
{
	static const char *const keys[] = { "servers", "user", "password", "creds", "shard",
					    "partitions", "owns", "prefix", "events_stream",
					    "alerts_stream", "replicas", "events_max_age",
					    "alerts_max_age", "fetch", NULL };
	struct cluster_config *cc;
	const struct ynode *v;
	unsigned long n;

	if (expect_map(ld, node, "cluster", keys) < 0)
		return;
	if (!(cc = cfg->cluster = calloc(1, sizeof(*cc))) || !(cc->prefix = strdup("hearth")) ||
	    !(cc->events_stream = strdup("HEARTH_EVENTS")) || !(cc->alerts_stream = strdup("HEARTH_ALERTS"))) {
		report(ld, node, "out of memory");
		return;
	}
	cc->partitions = 16;
	cc->replicas = 3;
	cc->fetch = 64;
	if ((v = ynode_get(node, "servers")))
		set_string_list(ld, v, "cluster.servers", &cc->servers, &cc->nservers);
	if (!v || cc->nservers == 0)
		report(ld, v ? v : node, "cluster.servers needs at least one nats:// URL");
	if ((v = ynode_get(node, "user")))
		set_string(ld, v, "cluster.user", &cc->user);
	if ((v = ynode_get(node, "password")))
		set_string(ld, v, "cluster.password", &cc->password);
	if ((v = ynode_get(node, "creds")))
		set_string(ld, v, "cluster.creds", &cc->creds);
	/* nats-server 2.9 predates the fix for CVE-2023-47090: never without a user */
	if (!cc->creds && !(cc->user && cc->password))
		report(ld, node, "cluster needs credentials: user and password, or creds");
	if (cc->creds && cc->user)
		report(ld, ynode_get(node, "creds"), "cluster: give either user/password or creds, not both");
	if ((v = ynode_get(node, "shard")) && check_name(ld, v, "cluster.shard") == 0)
		set_string(ld, v, "cluster.shard", &cc->shard);
	else if (!v)
		report(ld, node, "cluster needs a 'shard' name");
	if ((v = ynode_get(node, "partitions")) && cluster_uint(ld, v, "cluster.partitions", 1, 1024, &n) == 0)
		cc->partitions = (uint32_t)n;
	if ((v = ynode_get(node, "owns")))
		load_cluster_owns(ld, cc, v);
	else
		report(ld, node, "cluster needs 'owns', the partitions this shard consumes");
	for (size_t i = 0; i < cc->nowns; i++)
		if (cc->owns[i] >= cc->partitions)
			report(ld, ynode_get(node, "owns")->items[i],
			       "partition %u is not below cluster.partitions (%u)", cc->owns[i], cc->partitions);
	if ((v = ynode_get(node, "prefix")))
		cluster_token(ld, v, "cluster.prefix", &cc->prefix);
	if ((v = ynode_get(node, "events_stream")))
		cluster_token(ld, v, "cluster.events_stream", &cc->events_stream);
	if ((v = ynode_get(node, "alerts_stream")))
		cluster_token(ld, v, "cluster.alerts_stream", &cc->alerts_stream);
	if ((v = ynode_get(node, "replicas")) && cluster_uint(ld, v, "cluster.replicas", 1, 5, &n) == 0)
		cc->replicas = (int)n;
	if ((v = ynode_get(node, "events_max_age")))
		set_duration(ld, v, "cluster.events_max_age", &cc->events_max_age_ms);
	if ((v = ynode_get(node, "alerts_max_age")))
		set_duration(ld, v, "cluster.alerts_max_age", &cc->alerts_max_age_ms);
	if ((v = ynode_get(node, "fetch")) && cluster_uint(ld, v, "cluster.fetch", 1, 1024, &n) == 0)
		cc->fetch = (int)n;
}

static int set_defaults(struct config *cfg)
{
	static const char *const ingest = "ipc:///run/hearth/ingest.sock";
	static const char *const publish = "ipc:///run/hearth/alerts.sock";

	cfg->store_path = strdup("/var/lib/hearth");
	cfg->map_size = 256ULL << 20;
	cfg->max_size = 64ULL << 30;
	cfg->ingest_listen = calloc(2, sizeof(char *));
	cfg->publish_listen = calloc(2, sizeof(char *));
	cfg->max_future_ms = MS_PER_HOUR;
	cfg->heartbeat_ms = 5 * MS_PER_SECOND;
	cfg->retain_ms = 7 * MS_PER_DAY;
	cfg->control_path = strdup("/run/hearth/control.sock");
	cfg->control_mode = 0660;
	cfg->admin_groups = calloc(2, sizeof(char *));
	cfg->eval_interval_ms = 60 * MS_PER_SECOND;
	cfg->load_idle_ms = 60 * MS_PER_SECOND;
	cfg->flap_window_ms = MS_PER_HOUR;
	cfg->log_level = LOG_LEVEL_INFO;
	if (!cfg->store_path || !cfg->ingest_listen || !cfg->publish_listen ||
	    !cfg->control_path || !cfg->admin_groups)
		return -1;
	cfg->ingest_listen[0] = strdup(ingest);
	cfg->publish_listen[0] = strdup(publish);
	cfg->admin_groups[0] = strdup("hearth");
	cfg->ningest_listen = cfg->npublish_listen = cfg->nadmin_groups = 1;
	if (!cfg->ingest_listen[0] || !cfg->publish_listen[0] || !cfg->admin_groups[0])
		return -1;
	return 0;
}

static struct config *config_from_tree(const struct ynode *root, const char *name,
				       char *errors, size_t size)
{
	static const char *const keys[] = { "store", "ingest", "publish", "control", "evaluation",
					    "log", "events", "priority", "rules", "curve", "insecure",
					    "cluster", NULL };
	struct loader ld = { .file = name, .errors = errors, .size = size };
	struct config *cfg = calloc(1, sizeof(*cfg));
	const struct ynode *v;

	if (size)
		errors[0] = '\0';
	if (!cfg || !(cfg->file = strdup(name)) || set_defaults(cfg) < 0) {
		snprintf(errors, size, "%s: out of memory\n", name);
		config_free(cfg);
		return NULL;
	}
	if (expect_map(&ld, root, "the configuration", keys) == 0) {
		if ((v = ynode_get(root, "store")))
			load_store(&ld, cfg, v);
		if ((v = ynode_get(root, "ingest")))
			load_ingest(&ld, cfg, v);
		if ((v = ynode_get(root, "publish")))
			load_publish(&ld, cfg, v);
		if ((v = ynode_get(root, "control")))
			load_control(&ld, cfg, v);
		if ((v = ynode_get(root, "evaluation")))
			load_evaluation(&ld, cfg, v);
		if ((v = ynode_get(root, "log")))
			load_log(&ld, cfg, v);
		if ((v = ynode_get(root, "events")))
			load_events(&ld, cfg, v);
		if ((v = ynode_get(root, "priority"))) {
			set_string(&ld, v, "priority", &cfg->priority);
			set_pos(v, &cfg->priority_pos);
		}
		if ((v = ynode_get(root, "rules")))
			load_rules(&ld, cfg, v);
		if ((v = ynode_get(root, "curve")))
			load_curve(&ld, cfg, v);
		if ((v = ynode_get(root, "insecure")) && get_scalar(&ld, v, "insecure") == 0) {
			if (strcmp(v->value, "true") && strcmp(v->value, "false"))
				report(&ld, v, "insecure must be true or false");
			cfg->insecure = strcmp(v->value, "true") == 0;
		}
		if ((v = ynode_get(root, "cluster")))
			load_cluster(&ld, cfg, v);
		check_exposed(&ld, cfg, ynode_get(ynode_get(root, "ingest"), "listen"));
		check_exposed(&ld, cfg, ynode_get(ynode_get(root, "publish"), "listen"));
	}
	if (ld.count > 0) {
		config_free(cfg);
		return NULL;
	}
	return cfg;
}

struct config *config_load_string(const char *text, size_t len, const char *name,
				  char *errors, size_t size)
{
	struct ynode *root = ynode_load_string(text, len, name, errors, size);
	struct config *cfg;

	if (!root) {
		strncat(errors, "\n", size - strlen(errors) - 1);
		return NULL;
	}
	cfg = config_from_tree(root, name, errors, size);
	ynode_free(root);
	return cfg;
}

struct config *config_load(const char *path, char *errors, size_t size)
{
	struct ynode *root = ynode_load_file(path, errors, size);
	struct config *cfg;

	if (!root) {
		strncat(errors, "\n", size - strlen(errors) - 1);
		return NULL;
	}
	cfg = config_from_tree(root, path, errors, size);
	ynode_free(root);
	return cfg;
}

struct config *config_ref(struct config *cfg)
{
	atomic_fetch_add(&cfg->refs, 1);
	return cfg;
}

void config_free(struct config *cfg)
{
	if (!cfg || atomic_fetch_sub(&cfg->refs, 1) > 0)
		return;
	free(cfg->file);
	free(cfg->store_path);
	free_strings(cfg->ingest_listen, cfg->ningest_listen);
	free_strings(cfg->publish_listen, cfg->npublish_listen);
	free(cfg->control_path);
	free_strings(cfg->admin_groups, cfg->nadmin_groups);
	for (size_t i = 0; i < cfg->nsets; i++) {
		free(cfg->sets[i].name);
		free_strings(cfg->sets[i].types, cfg->sets[i].ntypes);
	}
	free(cfg->sets);
	for (size_t i = 0; i < cfg->ncases; i++) {
		free(cfg->cases[i].name);
		free(cfg->cases[i].open);
		free(cfg->cases[i].close);
		free(cfg->cases[i].due);
	}
	free(cfg->cases);
	free(cfg->priority);
	for (size_t i = 0; i < cfg->nrules; i++) {
		struct config_rule *r = &cfg->rules[i];
		free(r->name);
		free(r->when);
		free(r->summary);
		for (size_t j = 0; j < r->nlabels; j++) {
			free(r->labels[j].key);
			free(r->labels[j].value);
		}
		free(r->labels);
	}
	free(cfg->rules);
	free(cfg->curve_secret_key_file);
	free(cfg->curve_public_key_file);
	free(cfg->curve_authorized_keys);
	cluster_config_free(cfg->cluster);
	free(cfg);
}

const struct config_set *config_find_set(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nsets; i++)
		if (strcmp(cfg->sets[i].name, name) == 0)
			return &cfg->sets[i];
	return NULL;
}

const struct config_case *config_find_case(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->ncases; i++)
		if (strcmp(cfg->cases[i].name, name) == 0)
			return &cfg->cases[i];
	return NULL;
}

static uint64_t fnv(uint64_t h, const char *s)
{
	for (; s && *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	h ^= 0xff; /* separator: "ab"+"c" differs from "a"+"bc" */
	return h * 1099511628211ULL;
}

uint64_t config_cases_signature(const struct config *cfg)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < cfg->ncases; i++) {
		h = fnv(h, cfg->cases[i].name);
		h = fnv(h, cfg->cases[i].open);
		h = fnv(h, cfg->cases[i].close);
		h = fnv(h, cfg->cases[i].due ? cfg->cases[i].due : "");
	}
	return h;
}
