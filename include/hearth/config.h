/*
 * The daemon's configuration (PROTOCOL.md §6), loaded from YAML. Every error names
 * file:line:col; loading collects all errors rather than stopping at the first.
 */
#ifndef HEARTH_CONFIG_H
#define HEARTH_CONFIG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct ynode;
struct cluster_config;

enum severity { SEVERITY_INFO, SEVERITY_WARNING, SEVERITY_CRITICAL };
const char *severity_name(enum severity severity);

/* Where a piece of config text came from, for errors found after loading. */
struct config_pos {
	int line, col;
	int quoted;     /* the scalar was quoted: its text starts one column later */
};

struct config_set {
	char *name;
	char **types;
	size_t ntypes;
};

struct config_case {
	char *name;
	char *open, *close;
	char *due;      /* attr holding the deadline, or NULL */
};

struct config_label {
	char *key, *value;
};

struct config_rule {
	char *name;
	char *when;
	struct config_pos when_pos;
	int64_t for_ms;
	enum severity severity;
	int64_t repeat_ms;      /* 0: never repeat */
	char *summary;          /* template, or NULL for the default */
	struct config_pos summary_pos;
	struct config_label *labels;
	size_t nlabels;
};

struct config {
	char *file;
	/* references besides the loader's (config_ref): the control thread holds one */
	atomic_int refs;

	char *store_path;
	uint64_t map_size, max_size;

	char **ingest_listen;
	size_t ningest_listen;
	int64_t max_future_ms;

	char **publish_listen;
	size_t npublish_listen;
	int64_t heartbeat_ms;
	int64_t retain_ms;

	char *control_path;
	unsigned control_mode;
	char **admin_groups;
	size_t nadmin_groups;

	int64_t eval_interval_ms;
	int64_t load_idle_ms;           /* a history load with no batch for this long has ended */
	int64_t flap_window_ms;         /* firing then resolved within this counts as a flap */
	int log_level;

	struct config_set *sets;
	size_t nsets;
	struct config_case *cases;
	size_t ncases;

	char *priority;
	struct config_pos priority_pos;

	struct config_rule *rules;
	size_t nrules;

	/* ZeroMQ CURVE for ingest and publish (an extension: docs/SECURITY.md) */
	char *curve_secret_key_file;    /* NULL: no CURVE */
	char *curve_public_key_file;
	char *curve_authorized_keys;    /* directory of client public keys */
	int insecure;                   /* allow plain tcp:// on non-loopback addresses */

	/* cluster mode on NATS JetStream (hearth/cluster.h); NULL: single-server */
	struct cluster_config *cluster;
};

/*
 * Loads FILE. On failure returns NULL and writes every error, one per line as
 * "file:line:col: message", into errors (truncated to size).
 */
struct config *config_load(const char *path, char *errors, size_t size);
struct config *config_load_string(const char *text, size_t len, const char *name,
				  char *errors, size_t size);
/* Another reference to cfg, for another thread; config_free drops one, the last frees. */
struct config *config_ref(struct config *cfg);
void config_free(struct config *cfg);

const struct config_set *config_find_set(const struct config *cfg, const char *name);
const struct config_case *config_find_case(const struct config *cfg, const char *name);

/* A tcp:// endpoint not bound to loopback. */
int endpoint_is_exposed(const char *endpoint);

/* Changes whenever events.cases changes: case state must then be rebuilt. */
uint64_t config_cases_signature(const struct config *cfg);

/* Shared by config loaders: "^[a-z][a-z0-9_]{0,31}$" (PROTOCOL.md §1.4). */
int name_is_valid(const char *s, size_t len);

#endif
