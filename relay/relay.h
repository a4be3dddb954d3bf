/*
 * hearth-relay: hearthd's alerts (PROTOCOL.md §4) into team chat (docs/RELAY.md).
 *
 * The flow mirrors the daemon's: source (SUB + replay) → dispatch to every
 * target → per-target queue → format → HTTP (curl multi) → durable seq.
 * Each target owns its queue, its one in-flight request and its last
 * delivered seq, so a slow or failing target never holds the others back.
 */
#ifndef HEARTH_RELAY_H
#define HEARTH_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "hearth/err.h"

struct json_object;
struct tz;
struct ynode;

#define RELAY_EXIT_OK     0
#define RELAY_EXIT_FAIL   1
#define RELAY_EXIT_USAGE  2
#define RELAY_EXIT_CONFIG 78

#define RELAY_NAME_MAX      64
#define RELAY_GROUP_MAX     100      /* alerts in one grouped message */
#define RELAY_QUEUE_MAX     10000    /* default queue_max */
#define RELAY_REPLAY_LIMIT  1000     /* PROTOCOL.md §5.19 replay default */
#define RELAY_CONNECT_TIMEOUT_MS (5 * 1000)
#define RELAY_TOTAL_TIMEOUT_MS   (10 * 1000)
#define RELAY_STOP_WAIT_MS       (12 * 1000)   /* SIGTERM: bound on the delivery in hand */

enum relay_kind { KIND_FIRING = 1 << 0, KIND_REPEAT = 1 << 1, KIND_RESOLVED = 1 << 2 };
#define KIND_ALL (KIND_FIRING | KIND_REPEAT | KIND_RESOLVED)

/* A list of strings ("any of"); empty means "no condition". */
struct strlist {
	char **v;
	size_t n;
};

/* The language of a target's default texts and labels. */
enum relay_locale { LOCALE_UNSET = -1, LOCALE_EN = 0, LOCALE_ZH = 1, LOCALE_COUNT };

/* What a rule is called in one locale: keys[i] reads as values[i]. */
struct labelmap {
	struct strlist keys, values;
};

struct target_type;

struct target_conf {
	char *name;
	const struct target_type *type;
	char *url;
	char *secret;                   /* never logged */
	char *template;                 /* NULL: the type's default */
	struct strlist severity, rule, owner, customer;
	struct strlist label_keys, label_values;
	unsigned kinds;
	int64_t group_wait_ms;
	int64_t rate_interval_ms;       /* 0: no limit; else the spacing of messages */
	int64_t backoff_ms, backoff_max_ms;
	int64_t connect_timeout_ms, timeout_ms;
	size_t queue_max;               /* alerts held in memory; beyond, re-read from replay later */
	char *ca_file;
	int format;                     /* index into the type's formats; 0 is its default */
	int locale;                     /* enum relay_locale, resolved at load */
	const struct tz *tz;            /* times in messages: tz_own, else the config's */
	struct tz *tz_own;
	const struct labelmap *rule_labels; /* borrowed from the config, for this locale */
	int64_t hold_firing_ms;         /* 0: post firing at once; else drop flaps shorter than this */
	char *web_url_own;
	const char *web_url;            /* hearth-web's base: {link} points there; NULL: no links */
};

struct relay_config {
	char *path;
	char *publish;                  /* in NATS mode: the URLs, as `nats` */
	char *control;                  /* in NATS mode: "" */
	/* source.nats (cluster mode, PROTOCOL.md §9.5): the alerts stream instead of PUB + replay */
	char *nats;                     /* "nats://a:4222,nats://b:4222"; NULL: ZeroMQ */
	char *nats_user, *nats_password, *nats_creds;
	char *nats_stream;              /* HEARTH_ALERTS */
	char *nats_prefix;              /* hearth */
	char *state_dir;
	/* CURVE, when hearthd's publish socket is a CURVE server (docs/SECURITY.md) */
	char curve_server[41], curve_public[41], curve_secret[41];
	int curve;
	int log_level;
	struct tz *tz;                  /* `timezone`, else the system's */
	int locale;                     /* `locale`, else LOCALE_UNSET: each type's own */
	struct labelmap rule_labels[LOCALE_COUNT];
	char *web_url;                  /* `web_url`: hearth-web's base URL, for deep links */
	struct target_conf *targets;
	size_t ntargets;
};

/* config.c: every error printed as file:line:col; NULL when there were any. */
struct relay_config *relay_config_load(const char *path, int *nerrors);
void relay_config_free(struct relay_config *cfg);

/* template.c */
/* The value at a dotted path; a key that itself holds dots ("max(x, 0.5)") is found too. */
struct json_object *json_at(struct json_object *o, const char *dotted);
/*
 * Expands {dotted.path} and {path|filter} against body, in tc's locale and
 * time zone (tc NULL: English, UTC); {{ and }} are literal braces. malloc'd.
 */
char *template_expand(const char *tpl, struct json_object *body, const struct target_conf *tc);
/* Whether a rule term (a key of alert.values) has a duration for its value (PROTOCOL.md §7.4). */
int term_is_duration(const char *term);

/* sign.c: base64(HMAC-SHA256(key, msg)) into out (>= 64 bytes). */
int hmac_sha256_b64(const char *key, size_t klen, const char *msg, size_t mlen,
		    char *out, size_t outsize);

/* formats.c: the table of target types. */
struct message {
	char *url;                      /* malloc'd; the target's URL, signed if needed */
	char *body;                     /* malloc'd JSON */
};
struct target_type {
	const char *name;
	int locale;                     /* the language its users most likely read */
	int needs_secret_ok;            /* accepts `secret` */
	int errcode_in_body;            /* answers 200 with {"errcode"|"code": N} on failure */
	const char *const *formats;     /* message variants, the default first; NULL-terminated */
	/* builds the message for n bodies (n >= 1) */
	int (*build)(const struct target_conf *tc, struct json_object **bodies, size_t n,
		     struct message *msg, struct herr *err);
};
const struct target_type *target_type_find(const char *name);
/* The index of `format` among the type's formats, or -1. */
int target_format_find(const struct target_type *type, const char *format);
const char *target_type_names(void);
void message_clear(struct message *msg);
int target_matches(const struct target_conf *tc, struct json_object *body);

/*
 * state.c: one small file per target: every seq <= upto has been handled
 * except those in held[] (firings waiting out hold_firing when it was written).
 */
#define STATE_HELD_MAX 1000
struct relay_state {
	uint64_t upto;
	uint64_t *held;                 /* ascending; malloc'd by state_read */
	size_t nheld;
};
int state_read(const char *dir, const char *name, struct relay_state *st, int *found, struct herr *err);
int state_write(const char *dir, const char *name, const struct relay_state *st, struct herr *err);

#endif
