/*
 * Compiling the configured rules (PROTOCOL.md §6.5, §6.6). A template "{name} has had no
 * contact for {since(touch)}" becomes literal parts and compiled holes; "{{"
 * and "}}" stand for literal braces.
 */
#include <json-c/json.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "hearth/codec.h"
#include "hearth/config.h"
#include "hearth/json_out.h"
#include "hearth/event.h"
#include "hearth/limits.h"
#include "hearth/rules.h"
#include "hearth/state.h"
#include "hearth/units.h"

struct collector {
	const char *file;
	char *errors;
	size_t size, used;
	int count;
};

static void collect(struct collector *c, const struct config_pos *pos, size_t offset,
		    const char *what, const char *msg)
{
	c->count++;
	if (c->used + 1 >= c->size)
		return;
	int n = snprintf(c->errors + c->used, c->size - c->used, "%s:%d:%zu: %s: %s\n", c->file,
			 pos->line, (size_t)pos->col + (pos->quoted ? 1 : 0) + offset, what, msg);
	if (n > 0)
		c->used += (size_t)n < c->size - c->used ? (size_t)n : c->size - c->used - 1;
}

static void tmpl_free(struct tmpl *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->parts[i].text);
		expr_free(t->parts[i].expr);
	}
	free(t->parts);
	t->parts = NULL;
	t->n = 0;
}

static int tmpl_push(struct tmpl *t, char *text, struct expr *e)
{
	struct tmpl_part *parts = realloc(t->parts, (t->n + 1) * sizeof(*parts));

	if (!parts) {
		free(text);
		expr_free(e);
		return -1;
	}
	t->parts = parts;
	t->parts[t->n++] = (struct tmpl_part){ text, e };
	return 0;
}

static int tmpl_compile(struct tmpl *t, const char *src, const struct config *cfg,
			struct collector *c, const struct config_pos *pos, const char *what)
{
	size_t len = strlen(src), i = 0;
	char *lit = malloc(len + 1);
	size_t n = 0;

	if (!lit)
		return -1;
	while (i < len) {
		if ((src[i] == '{' || src[i] == '}') && i + 1 < len && src[i + 1] == src[i]) {
			lit[n++] = src[i];
			i += 2;
			continue;
		}
		if (src[i] == '}') {
			collect(c, pos, i, what, "a lone '}' (write '}}' for a brace)");
			free(lit);
			return -1;
		}
		if (src[i] != '{') {
			lit[n++] = src[i++];
			continue;
		}
		const char *close = strchr(src + i + 1, '}');
		if (!close) {
			collect(c, pos, i, what, "'{' without a closing '}'");
			free(lit);
			return -1;
		}
		if (n > 0) {
			lit[n] = '\0';
			if (tmpl_push(t, strndup(lit, n), NULL) < 0) {
				free(lit);
				return -1;
			}
			n = 0;
		}
		char *hole = strndup(src + i + 1, (size_t)(close - src - i - 1));
		char msg[256];
		size_t err_pos;
		struct expr *e = hole ? expr_compile(hole, cfg, msg, sizeof(msg), &err_pos) : NULL;
		free(hole);
		if (!e) {
			collect(c, pos, i + 1 + err_pos, what, msg);
			free(lit);
			return -1;
		}
		if (tmpl_push(t, NULL, e) < 0) {
			free(lit);
			return -1;
		}
		i = (size_t)(close - src) + 1;
	}
	if (n > 0) {
		lit[n] = '\0';
		if (tmpl_push(t, strndup(lit, n), NULL) < 0) {
			free(lit);
			return -1;
		}
	}
	free(lit);
	return 0;
}

static struct expr *compile_at(const char *src, const struct config *cfg, struct collector *c,
			       const struct config_pos *pos, const char *what)
{
	char msg[256];
	size_t err_pos;
	struct expr *e = expr_compile(src, cfg, msg, sizeof(msg), &err_pos);

	if (!e)
		collect(c, pos, err_pos, what, msg);
	return e;
}

static _Atomic uint64_t rulesets_compiled;

struct ruleset *ruleset_compile(const struct config *cfg, char *errors, size_t size)
{
	struct collector c = { .file = cfg->file, .errors = errors, .size = size };
	struct ruleset *rs = calloc(1, sizeof(*rs));
	char what[96];

	if (size)
		errors[0] = '\0';
	if (!rs || !(rs->rules = calloc(cfg->nrules ? cfg->nrules : 1, sizeof(*rs->rules)))) {
		free(rs);
		snprintf(errors, size, "%s: out of memory\n", cfg->file);
		return NULL;
	}
	rs->n = cfg->nrules;
	rs->id = atomic_fetch_add(&rulesets_compiled, 1) + 1;
	if (cfg->priority)
		rs->priority = compile_at(cfg->priority, cfg, &c, &cfg->priority_pos, "priority");
	for (size_t i = 0; i < cfg->nrules; i++) {
		const struct config_rule *cr = &cfg->rules[i];
		struct rule *r = &rs->rules[i];
		r->cfg = cr;
		snprintf(what, sizeof(what), "rule '%s'", cr->name ? cr->name : "?");
		if (cr->when) {
			r->when = compile_at(cr->when, cfg, &c, &cr->when_pos, what);
			if (r->when && r->when->root->type != TYPE_BOOL && r->when->root->type != TYPE_ANY &&
			    r->when->root->type != TYPE_NULL)
				collect(&c, &cr->when_pos, 0, what, "'when' must be a condition (true or false)");
			if (r->when && rule_terms_init(r) < 0)
				collect(&c, &cr->when_pos, 0, what, "out of memory");
		}
		snprintf(what, sizeof(what), "rule '%s' summary", cr->name ? cr->name : "?");
		if (cr->summary)
			tmpl_compile(&r->summary, cr->summary, cfg, &c, &cr->summary_pos, what);
		else {
			/* the default names what fired and for whom: "<rule> for <customer id>" */
			struct config_pos none = { 1, 1, 0 };
			char text[HEARTH_NAME_MAX * 2 + 16];
			snprintf(text, sizeof(text), "%s for {id}", cr->name ? cr->name : "rule");
			tmpl_compile(&r->summary, text, cfg, &c, &none, what);
		}
	}
	if (c.count > 0) {
		ruleset_free(rs);
		return NULL;
	}
	return rs;
}

void ruleset_free(struct ruleset *rs)
{
	if (!rs)
		return;
	for (size_t i = 0; i < rs->n; i++) {
		expr_free(rs->rules[i].when);
		tmpl_free(&rs->rules[i].summary);
		rule_terms_free(&rs->rules[i]);
	}
	free(rs->rules);
	expr_free(rs->priority);
	free(rs);
}

ssize_t ruleset_index(const struct ruleset *rs, const char *name)
{
	for (size_t i = 0; i < rs->n; i++)
		if (strcmp(rs->rules[i].cfg->name, name) == 0)
			return (ssize_t)i;
	return -1;
}

const struct rule *ruleset_find(const struct ruleset *rs, const char *name)
{
	ssize_t i = ruleset_index(rs, name);
	return i < 0 ? NULL : &rs->rules[i];
}

void tmpl_render(const struct tmpl *t, struct eval_env *env, char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < t->n && used + 1 < size; i++) {
		char piece[512];
		const char *text = t->parts[i].text;
		if (!text) {
			struct value v;
			if (expr_eval(t->parts[i].expr, env, &v, NULL) < 0)
				v.type = TYPE_NULL;
			value_format(&v, piece, sizeof(piece));
			piece[utf8_cut(piece, strlen(piece))] = '\0';
			text = piece;
		}
		size_t n = strlen(text);
		if (n > size - used - 1)
			n = size - used - 1;
		memcpy(buf + used, text, n);
		used += n;
		buf[used] = '\0';
	}
	/* a summary cut at the buffer's end must not end inside a character */
	buf[utf8_cut(buf, used)] = '\0';
}

/* ---- what a rule's values show --------------------------------------------- */

struct terms_build {
	struct rule *r;
	size_t cap;
	struct wbuf keys;
	int failed;
};

static void add_rule_term(const struct node *term, const char *text, size_t len, void *vctx)
{
	struct terms_build *tb = vctx;
	struct rule *r = tb->r;
	char key[TERM_TEXT_MAX + 1];

	if (len > TERM_TEXT_MAX)
		len = TERM_TEXT_MAX;
	/* json-c keeps a key's first value: so do values */
	for (size_t i = 0; i < r->nterms; i++)
		if (r->terms[i].len == len && memcmp(r->terms[i].text, text, len) == 0)
			return;
	if (r->nterms == tb->cap) {
		size_t cap = tb->cap ? tb->cap * 2 : 8;
		struct rule_term *more = realloc(r->terms, cap * sizeof(*more));
		if (!more) {
			tb->failed = 1;
			return;
		}
		r->terms = more;
		tb->cap = cap;
	}
	struct rule_term *t = &r->terms[r->nterms++];
	struct json_out o = { .b = &tb->keys, .escape_slash = 1 };
	memcpy(key, text, len);
	key[len] = '\0';
	*t = (struct rule_term){ .node = term, .text = text, .len = len, .key_off = tb->keys.len };
	json_out_cstr(&o, key);
	wbuf_u8(&tb->keys, ':');
	t->key_len = tb->keys.len - t->key_off;
}

int rule_terms_init(struct rule *r)
{
	struct terms_build tb = { .r = r };

	wbuf_init(&tb.keys);
	expr_walk_terms(r->when, add_rule_term, &tb);
	if (tb.failed || tb.keys.failed) {
		wbuf_free(&tb.keys);
		return -1;
	}
	/* the wbuf's bytes become the rule's: no copy */
	r->term_keys = (char *)tb.keys.data;
	return 0;
}

void rule_terms_free(struct rule *r)
{
	free(r->terms);
	free(r->term_keys);
	r->terms = NULL;
	r->term_keys = NULL;
	r->nterms = 0;
}

static void put_value_text(struct json_out *o, const struct value *v)
{
	char buf[TIME_BUF];

	switch (v->type) {
	case TYPE_BOOL: json_out_bool(o, v->b); break;
	case TYPE_NUM:
		if (v->num == floor(v->num) && fabs(v->num) < 9e15)
			json_out_int64(o, (int64_t)v->num);
		else
			json_out_double(o, v->num);
		break;
	case TYPE_DUR: json_out_int64(o, v->ms); break;
	case TYPE_TIME: json_out_cstr(o, time_format(v->ms, buf, sizeof(buf))); break;
	case TYPE_STR: json_out_str(o, v->str.s, v->str.len); break;
	default: json_out_null(o); break;
	}
}

void rule_values_text(const struct rule *r, struct eval_env *env, struct wbuf *out)
{
	struct json_out o = { .b = out, .escape_slash = 1 };

	wbuf_u8(out, '{');
	for (size_t i = 0; i < r->nterms; i++) {
		const struct rule_term *t = &r->terms[i];
		struct value v;
		if (i)
			wbuf_u8(out, ',');
		wbuf_put(out, r->term_keys + t->key_off, t->key_len);
		if (node_eval_value(t->node, env, &v) < 0)
			v.type = TYPE_NULL;
		put_value_text(&o, &v);
	}
	wbuf_u8(out, '}');
}

struct json_object *rule_values(const struct rule *r, struct eval_env *env)
{
	struct json_object *out = json_object_new_object();
	char key[TERM_TEXT_MAX + 1];

	for (size_t i = 0; out && i < r->nterms; i++) {
		const struct rule_term *t = &r->terms[i];
		struct value v;
		memcpy(key, t->text, t->len);
		key[t->len] = '\0';
		if (node_eval_value(t->node, env, &v) < 0)
			v.type = TYPE_NULL;
		json_object_object_add(out, key, value_to_json(&v));
	}
	return out;
}

/* ---- what a rule is, as a digest ------------------------------------------- */

static uint64_t fnv64(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	return h;
}

static uint64_t fnv64_str(uint64_t h, const char *s)
{
	return fnv64(h, s ? s : "", s ? strlen(s) + 1 : 1);
}

uint64_t rule_digest(const struct config_rule *r)
{
	uint64_t h = 14695981039346656037ULL;
	int64_t numbers[3] = { r->for_ms, r->repeat_ms, (int64_t)r->severity };

	h = fnv64_str(h, r->when);
	h = fnv64(h, numbers, sizeof(numbers));
	h = fnv64_str(h, r->summary);
	for (size_t i = 0; i < r->nlabels; i++) {
		h = fnv64_str(h, r->labels[i].key);
		h = fnv64_str(h, r->labels[i].value);
	}
	return h;
}

int rule_digests_of(const struct ruleset *rs, struct rule_digests *out)
{
	out->n = 0;
	if (!(out->v = calloc(rs->n ? rs->n : 1, sizeof(*out->v))))
		return -1;
	for (size_t i = 0; i < rs->n; i++) {
		struct rule_digest *d = &out->v[out->n++];
		snprintf(d->name, sizeof(d->name), "%s", rs->rules[i].cfg->name);
		d->digest = rule_digest(rs->rules[i].cfg);
	}
	return 0;
}

void rule_digests_encode(const struct rule_digests *d, struct wbuf *b)
{
	wbuf_u8(b, 1); /* version */
	wbuf_u32(b, (uint32_t)d->n);
	for (size_t i = 0; i < d->n; i++) {
		wbuf_str8(b, d->v[i].name, strlen(d->v[i].name));
		wbuf_u64(b, d->v[i].digest);
	}
}

int rule_digests_decode(const void *data, size_t len, struct rule_digests *out)
{
	struct rbuf r;
	uint32_t n;

	out->v = NULL;
	out->n = 0;
	rbuf_init(&r, data, len);
	if (rbuf_u8(&r) != 1 || (n = rbuf_u32(&r)) > len || r.failed)
		return -1;
	if (!(out->v = calloc(n ? n : 1, sizeof(*out->v))))
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		size_t nlen;
		const char *name = rbuf_str8(&r, &nlen);
		uint64_t digest = rbuf_u64(&r);
		if (r.failed || nlen > HEARTH_NAME_MAX)
			goto fail;
		memcpy(out->v[i].name, name, nlen);
		out->v[i].name[nlen] = '\0';
		out->v[i].digest = digest;
		out->n++;
	}
	return 0;
fail:
	rule_digests_free(out);
	return -1;
}

void rule_digests_free(struct rule_digests *d)
{
	free(d->v);
	d->v = NULL;
	d->n = 0;
}

ssize_t rule_digests_index(const struct rule_digests *d, const char *name)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->v[i].name, name) == 0)
			return (ssize_t)i;
	return -1;
}
