/*
 * A YAML document as a small tree whose every node remembers its line and
 * column, so that config loaders (daemon and relay) can name file:line:col in
 * each error. Built with libyaml; anchors are ignored and aliases refused.
 */
#ifndef HEARTH_YAMLTREE_H
#define HEARTH_YAMLTREE_H

#include <stddef.h>

enum ynode_kind { YNODE_SCALAR, YNODE_MAP, YNODE_SEQ };

struct ynode {
	enum ynode_kind kind;
	int line, col;          /* 1-based position of the node's first character */
	char *value;            /* scalar text, NUL-terminated */
	size_t len;             /* scalar length in bytes */
	int plain;              /* scalar was written without quotes */
	struct ynode **items;   /* seq: items; map: key, value, key, value, ... */
	size_t n;               /* seq: items; map: pairs */
};

/* Parses FILE; on error fills msg ("file:line:col: problem") and returns NULL. */
struct ynode *ynode_load_file(const char *path, char *msg, size_t msg_size);
struct ynode *ynode_load_string(const char *text, size_t len, const char *name,
				char *msg, size_t msg_size);
void ynode_free(struct ynode *node);

static inline struct ynode *ynode_key(const struct ynode *map, size_t i) { return map->items[2 * i]; }
static inline struct ynode *ynode_val(const struct ynode *map, size_t i) { return map->items[2 * i + 1]; }
/* The value under key in a map, or NULL. */
struct ynode *ynode_get(const struct ynode *map, const char *key);
const char *ynode_kind_name(enum ynode_kind kind);

#endif
