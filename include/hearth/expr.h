/*
 * The rule language of PROTOCOL.md §7: a hand-written lexer and recursive-descent
 * parser producing a small typed tree, checked at load time so that mixing a
 * duration with a number, an unknown function or case, or a wrong argument
 * count is a configuration error pointing at file:line:col.
 */
#ifndef HEARTH_EXPR_H
#define HEARTH_EXPR_H

#include <stddef.h>
#include <stdint.h>

struct config;

#define EXPR_TEXT_MAX  4096     /* bytes of one expression */
#define EXPR_DEPTH_MAX 64       /* nesting of one expression */

/* Static and dynamic types. TYPE_ANY: a profile value, known only when evaluated. */
enum vtype {
	TYPE_NULL, TYPE_BOOL, TYPE_NUM, TYPE_DUR, TYPE_TIME, TYPE_STR, TYPE_LIST, TYPE_ANY
};
const char *vtype_name(enum vtype t);

struct value {
	enum vtype type;
	union {
		int b;
		double num;
		int64_t ms;             /* TYPE_DUR and TYPE_TIME */
		struct {
			const char *s;  /* borrowed: from the tree or the customer */
			size_t len;
		} str;
		struct {
			const struct value *items;
			size_t n;
		} list;
	};
};

enum node_kind {
	NODE_LIT, NODE_NAME, NODE_CALL, NODE_NEG, NODE_NOT, NODE_AND, NODE_OR,
	NODE_ADD, NODE_SUB, NODE_MUL, NODE_DIV,
	NODE_EQ, NODE_NE, NODE_LT, NODE_LE, NODE_GT, NODE_GE, NODE_IN, NODE_NOT_IN, NODE_LIST
};

enum func_id {
	FN_SINCE, FN_COUNT, FN_SUM, FN_GAP, FN_AGE, FN_OPEN, FN_OLDEST, FN_OVERDUE,
	FN_MIN, FN_MAX, FN_ABS, FN_DAYS
};

enum name_id { NAME_ID, NAME_NOW, NAME_PROFILE };

struct node {
	enum node_kind kind;
	enum vtype type;                /* static type after checking */
	size_t pos;                     /* byte offset in the source, for errors */
	size_t end;                     /* one past the last byte: the term's text */
	struct value lit;               /* NODE_LIT (strings point into `text`) */
	char *text;                     /* NODE_LIT string / NODE_NAME name / NODE_CALL event type, set or case */
	enum name_id name;              /* NODE_NAME */
	enum func_id fn;                /* NODE_CALL */
	const char *const *types;       /* NODE_CALL: event types T stands for (borrowed from config) */
	uint32_t *type_hashes;          /* type_name_hash of each (owned) */
	size_t ntypes;
	const char *attr;               /* NODE_CALL sum(): the attr name (owned via text2) */
	char *text2;
	struct node **kids;
	size_t nkids;
	struct value *items;            /* NODE_LIST of literals: evaluated once */
};

struct expr {
	char *src;                      /* the expression's text */
	struct node *root;
	int uses_window;                /* count() or sum(): may need a timeline scan */
	uint64_t deps;                  /* cust_changed_bit()s of what its value reads (state.h) */
};

/*
 * Compiles src against cfg (sets, cases). On error returns NULL and writes
 * "message" into msg and the byte offset of the fault into *err_pos.
 */
struct expr *expr_compile(const char *src, const struct config *cfg, char *msg, size_t size,
			  size_t *err_pos);
void expr_free(struct expr *e);

/* Calls fn for each top-level term worth showing in `explain` / alert values. */
typedef void (*expr_term_fn)(const struct node *term, const char *text, size_t len, void *ctx);
void expr_walk_terms(const struct expr *e, expr_term_fn fn, void *ctx);

#endif
