/*
 * libyaml's event stream folded into a tree of positioned nodes. The tree is
 * what config loaders walk; keeping positions here means every later error,
 * even one found while compiling a rule expression, can point at the file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "hearth/yamltree.h"

#define YAML_DEPTH_MAX 64

struct builder {
	yaml_parser_t parser;
	const char *name;
	char *msg;
	size_t msg_size;
};

static struct ynode *node_new(enum ynode_kind kind, const yaml_mark_t *mark)
{
	struct ynode *node = calloc(1, sizeof(*node));

	if (node) {
		node->kind = kind;
		node->line = (int)mark->line + 1;
		node->col = (int)mark->column + 1;
	}
	return node;
}

void ynode_free(struct ynode *node)
{
	if (!node)
		return;
	size_t count = node->kind == YNODE_MAP ? 2 * node->n : node->n;
	for (size_t i = 0; i < count; i++)
		ynode_free(node->items[i]);
	free(node->items);
	free(node->value);
	free(node);
}

/* Appends child as item number `count` (maps count keys and values apart). */
static int node_push(struct ynode *parent, size_t count, struct ynode *child)
{
	struct ynode **items = realloc(parent->items, (count + 1) * sizeof(*items));

	if (!items)
		return -1;
	parent->items = items;
	items[count] = child;
	return 0;
}

static void builder_error(struct builder *b, const yaml_mark_t *mark, const char *what)
{
	snprintf(b->msg, b->msg_size, "%s:%zu:%zu: %s", b->name, mark->line + 1,
		 mark->column + 1, what);
}

static struct ynode *build_node(struct builder *b, yaml_event_t *ev, int depth);

/* Reads children until the matching end event; ev is the start event. */
static struct ynode *build_collection(struct builder *b, yaml_event_t *start, int depth)
{
	enum ynode_kind kind = start->type == YAML_MAPPING_START_EVENT ? YNODE_MAP : YNODE_SEQ;
	yaml_event_type_t end = kind == YNODE_MAP ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT;
	struct ynode *node = node_new(kind, &start->start_mark);
	size_t pushed = 0;

	if (!node)
		return NULL;
	if (depth > YAML_DEPTH_MAX) {
		builder_error(b, &start->start_mark, "nested too deeply");
		goto fail;
	}
	for (;;) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&b->parser, &ev)) {
			builder_error(b, &b->parser.problem_mark,
				      b->parser.problem ? b->parser.problem : "YAML syntax error");
			goto fail;
		}
		if (ev.type == end) {
			yaml_event_delete(&ev);
			break;
		}
		struct ynode *child = build_node(b, &ev, depth + 1);
		yaml_event_delete(&ev);
		if (!child)
			goto fail;
		if (kind == YNODE_MAP && pushed % 2 == 0 && child->kind != YNODE_SCALAR) {
			snprintf(b->msg, b->msg_size, "%s:%d:%d: a key must be a plain value",
				 b->name, child->line, child->col);
			ynode_free(child);
			goto fail;
		}
		/* YAML forbids a key twice in one mapping; loaders can rely on that */
		if (kind == YNODE_MAP && pushed % 2 == 0 && ynode_get(node, child->value)) {
			snprintf(b->msg, b->msg_size, "%s:%d:%d: duplicate key '%.60s'", b->name,
				 child->line, child->col, child->value);
			ynode_free(child);
			goto fail;
		}
		if (node_push(node, pushed, child) < 0) {
			ynode_free(child);
			snprintf(b->msg, b->msg_size, "%s: out of memory", b->name);
			goto fail;
		}
		pushed++;
		if (kind == YNODE_SEQ)
			node->n++;
		else if (pushed % 2 == 0)
			node->n++;
	}
	return node;
fail:
	/* a dangling key (odd count) must be freed too */
	if (kind == YNODE_MAP && pushed % 2 == 1) {
		ynode_free(node->items[pushed - 1]);
	}
	ynode_free(node);
	return NULL;
}

static struct ynode *build_node(struct builder *b, yaml_event_t *ev, int depth)
{
	struct ynode *node;

	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		node = node_new(YNODE_SCALAR, &ev->start_mark);
		if (!node)
			return NULL;
		node->len = ev->data.scalar.length;
		node->value = malloc(node->len + 1);
		if (!node->value) {
			free(node);
			return NULL;
		}
		memcpy(node->value, ev->data.scalar.value, node->len);
		node->value[node->len] = '\0';
		node->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
		return node;
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		return build_collection(b, ev, depth);
	case YAML_ALIAS_EVENT:
		builder_error(b, &ev->start_mark, "aliases are not supported");
		return NULL;
	default:
		builder_error(b, &ev->start_mark, "unexpected YAML event");
		return NULL;
	}
}

static struct ynode *build_document(struct builder *b)
{
	struct ynode *root = NULL;
	int done = 0;

	while (!done) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&b->parser, &ev)) {
			builder_error(b, &b->parser.problem_mark,
				      b->parser.problem ? b->parser.problem : "YAML syntax error");
			ynode_free(root);
			return NULL;
		}
		switch (ev.type) {
		case YAML_STREAM_START_EVENT:
		case YAML_DOCUMENT_END_EVENT:
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (root) {
				builder_error(b, &ev.start_mark, "only one YAML document is allowed");
				yaml_event_delete(&ev);
				ynode_free(root);
				return NULL;
			}
			break;
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		default:
			root = build_node(b, &ev, 0);
			if (!root) {
				yaml_event_delete(&ev);
				return NULL;
			}
			break;
		}
		yaml_event_delete(&ev);
	}
	if (!root) {
		yaml_mark_t start = { 0, 0, 0 };
		root = node_new(YNODE_MAP, &start); /* an empty file is an empty map */
	}
	return root;
}

struct ynode *ynode_load_string(const char *text, size_t len, const char *name,
				char *msg, size_t msg_size)
{
	struct builder b = { .name = name, .msg = msg, .msg_size = msg_size };
	struct ynode *root;

	if (!yaml_parser_initialize(&b.parser)) {
		snprintf(msg, msg_size, "%s: out of memory", name);
		return NULL;
	}
	yaml_parser_set_input_string(&b.parser, (const unsigned char *)text, len);
	root = build_document(&b);
	yaml_parser_delete(&b.parser);
	return root;
}

struct ynode *ynode_load_file(const char *path, char *msg, size_t msg_size)
{
	struct ynode *root = NULL;
	char *text = NULL;
	size_t len = 0, cap = 0;
	FILE *f = fopen(path, "rb");

	if (!f) {
		snprintf(msg, msg_size, "%s: cannot open (%s)", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 8192;
			if (cap > (64u << 20)) {
				snprintf(msg, msg_size, "%s: larger than 64 MiB", path);
				goto out;
			}
			char *bigger = realloc(text, cap);
			if (!bigger) {
				snprintf(msg, msg_size, "%s: out of memory", path);
				goto out;
			}
			text = bigger;
		}
		size_t got = fread(text + len, 1, cap - len, f);
		len += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		snprintf(msg, msg_size, "%s: read error", path);
		goto out;
	}
	root = ynode_load_string(text, len, path, msg, msg_size);
out:
	free(text);
	fclose(f);
	return root;
}

struct ynode *ynode_get(const struct ynode *map, const char *key)
{
	if (!map || map->kind != YNODE_MAP)
		return NULL;
	for (size_t i = 0; i < map->n; i++)
		if (strcmp(ynode_key(map, i)->value, key) == 0)
			return ynode_val(map, i);
	return NULL;
}

const char *ynode_kind_name(enum ynode_kind kind)
{
	switch (kind) {
	case YNODE_SCALAR: return "a value";
	case YNODE_MAP: return "a mapping";
	case YNODE_SEQ: return "a list";
	}
	return "?";
}
