/*
 * The configured rules compiled once per configuration: each `when`, the
 * `priority` expression and every summary template. Compilation errors carry
 * file:line:col of the YAML scalar they came from.
 */
#ifndef HEARTH_RULES_H
#define HEARTH_RULES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hearth/eval.h"
#include "hearth/expr.h"
#include "hearth/limits.h"

struct config;
struct config_rule;
struct cust;
struct json_object;
struct wbuf;

/* A summary template: literal text and {expr} holes. */
struct tmpl_part {
	char *text;                     /* literal (NULL for a hole) */
	struct expr *expr;              /* hole */
};

struct tmpl {
	struct tmpl_part *parts;
	size_t n;
};

#define TERM_TEXT_MAX 255       /* a term's text as a key of values: longer is cut */

/* A distinct term of a rule's condition: what its values show, under its text. */
struct rule_term {
	const struct node *node;
	const char *text;               /* in the condition's source, at most TERM_TEXT_MAX bytes */
	size_t len;
	size_t key_off, key_len;        /* in the rule's term_keys: the text as a JSON key, with its ':' */
};

struct rule {
	const struct config_rule *cfg;  /* name, severity, for, repeat, labels */
	struct expr *when;
	struct tmpl summary;
	/* the condition's terms, once each, in the order they first appear */
	struct rule_term *terms;
	size_t nterms;
	char *term_keys;
	/* live counters for `rules` */
	uint64_t firing, pending;
	char last_error[200];
};

struct ruleset {
	struct rule *rules;
	size_t n;
	struct expr *priority;          /* NULL if the config has none */
	uint64_t id;                    /* this compilation's, never reused (a freed ruleset's address may be) */
};

/* Compiles every rule of cfg; errors as "file:line:col: message\n" lines. */
struct ruleset *ruleset_compile(const struct config *cfg, char *errors, size_t size);
void ruleset_free(struct ruleset *rs);
const struct rule *ruleset_find(const struct ruleset *rs, const char *name);
ssize_t ruleset_index(const struct ruleset *rs, const char *name);

/* Renders a template for a customer at env->now into buf (always terminated). */
void tmpl_render(const struct tmpl *t, struct eval_env *env, char *buf, size_t size);
/* r->terms from r->when (ruleset_compile does it for its rules); -1 out of memory. */
int rule_terms_init(struct rule *r);
void rule_terms_free(struct rule *r);
/* The rule's terms as evaluated: {"since(touch)": 2678400000, ...}. */
struct json_object *rule_values(const struct rule *r, struct eval_env *env);
/*
 * The same as JSON text in out (appended), byte for byte what serializing
 * rule_values with JSON_C_TO_STRING_PLAIN gives: alert states store it, and an
 * evaluation compares it with what they hold. No tree: firing alerts are
 * rendered at every evaluation.
 */
struct wbuf;
void rule_values_text(const struct rule *r, struct eval_env *env, struct wbuf *out);

/*
 * What each rule is, as a digest of everything that shapes its alerts (when, for,
 * repeat, severity, summary, labels): two rules of one name differ iff their
 * digests do. The store keeps the running rules' digests (meta "rules"), so that a
 * dry run against a store (`hearthd --check --against`) knows what changed.
 */
struct rule_digest {
	char name[HEARTH_NAME_MAX + 1];
	uint64_t digest;
};

struct rule_digests {
	struct rule_digest *v;
	size_t n;
};

uint64_t rule_digest(const struct config_rule *r);
int rule_digests_of(const struct ruleset *rs, struct rule_digests *out);
void rule_digests_encode(const struct rule_digests *d, struct wbuf *b);
int rule_digests_decode(const void *data, size_t len, struct rule_digests *out);
void rule_digests_free(struct rule_digests *d);
ssize_t rule_digests_index(const struct rule_digests *d, const char *name);

#endif
