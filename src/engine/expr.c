/*
 * Lexer, parser and type checker of the rule language (PROTOCOL.md §7). The grammar
 * maps one-to-one onto the parse_* functions below; each node is type-checked
 * as soon as its children are, so an error points at the operator or call
 * where the types stop fitting, not at the end of the expression.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/config.h"
#include "hearth/expr.h"
#include "hearth/state.h"
#include "hearth/units.h"

enum tok_kind {
	TOK_END, TOK_NUM, TOK_DUR, TOK_STR, TOK_NAME, TOK_LPAREN, TOK_RPAREN, TOK_LBRACK,
	TOK_RBRACK, TOK_COMMA, TOK_PLUS, TOK_MINUS, TOK_STAR, TOK_SLASH, TOK_EQ, TOK_NE,
	TOK_LT, TOK_LE, TOK_GT, TOK_GE, TOK_ERROR
};

struct token {
	enum tok_kind kind;
	size_t pos, len;
	double num;
	int64_t ms;
	char *str;                      /* TOK_STR: unescaped, owned until taken */
};

struct parser {
	const char *src;
	size_t len, at;
	struct token tok;
	const struct config *cfg;
	char *msg;
	size_t msg_size;
	size_t err_pos;
	int failed;
	int depth;
	int uses_window;
};

const char *vtype_name(enum vtype t)
{
	static const char *const names[] = { "null", "bool", "number", "duration", "time",
					     "string", "list", "value" };
	return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

static void __attribute__((format(printf, 3, 4)))
fail_at(struct parser *p, size_t pos, const char *fmt, ...)
{
	va_list ap;

	if (p->failed)
		return;
	p->failed = 1;
	p->err_pos = pos;
	va_start(ap, fmt);
	vsnprintf(p->msg, p->msg_size, fmt, ap);
	va_end(ap);
}

/* ---- lexer ----------------------------------------------------------------- */

static int lex_string(struct parser *p, struct token *t)
{
	char quote = p->src[p->at++];
	char *out = malloc(p->len - p->at + 1);
	size_t n = 0;

	if (!out) {
		fail_at(p, t->pos, "out of memory");
		return -1;
	}
	while (p->at < p->len && p->src[p->at] != quote) {
		char c = p->src[p->at++];
		if (c == '\\' && p->at < p->len) {
			char e = p->src[p->at++];
			c = e == 'n' ? '\n' : e == 't' ? '\t' : e;
		}
		out[n++] = c;
	}
	if (p->at >= p->len) {
		free(out);
		fail_at(p, t->pos, "unterminated string");
		return -1;
	}
	p->at++;
	out[n] = '\0';
	t->kind = TOK_STR;
	t->str = out;
	return 0;
}

static int lex_number(struct parser *p, struct token *t)
{
	size_t start = p->at;
	int dot = 0;

	while (p->at < p->len && (isdigit((unsigned char)p->src[p->at]) ||
				  (p->src[p->at] == '.' && !dot++)))
		p->at++;
	if (p->at < p->len && isalpha((unsigned char)p->src[p->at])) {
		/* a duration: digits and units, possibly several ("1d12h") */
		while (p->at < p->len && isalnum((unsigned char)p->src[p->at]))
			p->at++;
		if (dot || duration_parse(p->src + start, p->at - start, &t->ms) < 0) {
			fail_at(p, start, "bad duration '%.*s' (use e.g. 500ms, 90s, 15m, 12h, 30d, 2w, 1d12h)",
				(int)(p->at - start), p->src + start);
			return -1;
		}
		t->kind = TOK_DUR;
		return 0;
	}
	char buf[64];
	size_t n = p->at - start < sizeof(buf) - 1 ? p->at - start : sizeof(buf) - 1;
	memcpy(buf, p->src + start, n);
	buf[n] = '\0';
	t->num = strtod(buf, NULL);
	t->kind = TOK_NUM;
	return 0;
}

static void next(struct parser *p)
{
	static const struct { const char *text; enum tok_kind kind; } ops[] = {
		{ "==", TOK_EQ }, { "!=", TOK_NE }, { "<=", TOK_LE }, { ">=", TOK_GE },
		{ "<", TOK_LT }, { ">", TOK_GT }, { "(", TOK_LPAREN }, { ")", TOK_RPAREN },
		{ "[", TOK_LBRACK }, { "]", TOK_RBRACK }, { ",", TOK_COMMA }, { "+", TOK_PLUS },
		{ "-", TOK_MINUS }, { "*", TOK_STAR }, { "/", TOK_SLASH },
	};
	struct token *t = &p->tok;

	free(t->str);
	memset(t, 0, sizeof(*t));
	while (p->at < p->len && isspace((unsigned char)p->src[p->at]))
		p->at++;
	t->pos = p->at;
	if (p->failed) {
		t->kind = TOK_ERROR;
		return;
	}
	if (p->at >= p->len) {
		t->kind = TOK_END;
		return;
	}
	char c = p->src[p->at];
	if (c == '"' || c == '\'') {
		if (lex_string(p, t) < 0)
			t->kind = TOK_ERROR;
	} else if (isdigit((unsigned char)c)) {
		if (lex_number(p, t) < 0)
			t->kind = TOK_ERROR;
	} else if (islower((unsigned char)c) || c == '_') {
		while (p->at < p->len && (islower((unsigned char)p->src[p->at]) ||
					  isdigit((unsigned char)p->src[p->at]) || p->src[p->at] == '_'))
			p->at++;
		t->kind = TOK_NAME;
	} else {
		for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
			size_t n = strlen(ops[i].text);
			if (p->len - p->at >= n && memcmp(p->src + p->at, ops[i].text, n) == 0) {
				t->kind = ops[i].kind;
				p->at += n;
				t->len = n;
				return;
			}
		}
		fail_at(p, p->at, "unexpected character '%c'", c);
		t->kind = TOK_ERROR;
		return;
	}
	t->len = p->at - t->pos;
}

static int tok_is_word(const struct parser *p, const char *word)
{
	return p->tok.kind == TOK_NAME && p->tok.len == strlen(word) &&
	       memcmp(p->src + p->tok.pos, word, p->tok.len) == 0;
}

/* ---- tree ------------------------------------------------------------------ */

static void node_free(struct node *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->nkids; i++)
		node_free(n->kids[i]);
	free(n->kids);
	free(n->text);
	free(n->text2);
	free(n->items);
	free(n->type_hashes);
	free(n);
}

static struct node *node_new(struct parser *p, enum node_kind kind, size_t pos)
{
	struct node *n = calloc(1, sizeof(*n));
	if (!n)
		fail_at(p, pos, "out of memory");
	else {
		n->kind = kind;
		n->pos = pos;
	}
	return n;
}

static int add_kid(struct parser *p, struct node *n, struct node *kid)
{
	struct node **kids = realloc(n->kids, (n->nkids + 1) * sizeof(*kids));
	if (!kids) {
		node_free(kid);
		fail_at(p, kid ? kid->pos : 0, "out of memory");
		return -1;
	}
	n->kids = kids;
	n->kids[n->nkids++] = kid;
	n->end = kid->end > n->end ? kid->end : n->end;
	return 0;
}

static struct node *binary(struct parser *p, enum node_kind kind, size_t pos, struct node *l,
			   struct node *r)
{
	struct node *n = node_new(p, kind, l->pos);

	if (!n || add_kid(p, n, l) < 0) {
		node_free(l);
		node_free(r);
		node_free(n);
		return NULL;
	}
	if (add_kid(p, n, r) < 0) {
		node_free(n);
		return NULL;
	}
	(void)pos;
	return n;
}

/* ---- type checking --------------------------------------------------------- */

static int loose(enum vtype t)
{
	return t == TYPE_ANY || t == TYPE_NULL;
}

static const char *op_text(enum node_kind k)
{
	switch (k) {
	case NODE_ADD: return "+";
	case NODE_SUB: return "-";
	case NODE_MUL: return "*";
	case NODE_DIV: return "/";
	case NODE_EQ: return "==";
	case NODE_NE: return "!=";
	case NODE_LT: return "<";
	case NODE_LE: return "<=";
	case NODE_GT: return ">";
	case NODE_GE: return ">=";
	default: return "?";
	}
}

/* The type of l OP r for arithmetic, or -1 if undefined (PROTOCOL.md §7.3). */
static int arith_type(enum node_kind op, enum vtype l, enum vtype r)
{
	if (l == TYPE_NULL || r == TYPE_NULL)
		return TYPE_NULL;
	if (l == TYPE_ANY || r == TYPE_ANY) {
		enum vtype known = l == TYPE_ANY ? r : l;
		return known == TYPE_STR || known == TYPE_BOOL || known == TYPE_LIST ? -1 : TYPE_ANY;
	}
	switch (op) {
	case NODE_ADD:
		if (l == r && (l == TYPE_NUM || l == TYPE_DUR))
			return l;
		if ((l == TYPE_TIME && r == TYPE_DUR) || (l == TYPE_DUR && r == TYPE_TIME))
			return TYPE_TIME;
		return -1;
	case NODE_SUB:
		if (l == r && (l == TYPE_NUM || l == TYPE_DUR))
			return l;
		if (l == TYPE_TIME && r == TYPE_DUR)
			return TYPE_TIME;
		if (l == TYPE_TIME && r == TYPE_TIME)
			return TYPE_DUR;
		return -1;
	case NODE_MUL:
		if (l == TYPE_NUM && r == TYPE_NUM)
			return TYPE_NUM;
		if ((l == TYPE_NUM && r == TYPE_DUR) || (l == TYPE_DUR && r == TYPE_NUM))
			return TYPE_DUR;
		return -1;
	case NODE_DIV:
		if (l == TYPE_NUM && r == TYPE_NUM)
			return TYPE_NUM;
		if (l == TYPE_DUR && r == TYPE_NUM)
			return TYPE_DUR;
		if (l == TYPE_DUR && r == TYPE_DUR)
			return TYPE_NUM;
		return -1;
	default:
		return -1;
	}
}

static int check_arith(struct parser *p, struct node *n, size_t op_pos)
{
	enum vtype l = n->kids[0]->type, r = n->kids[1]->type;
	int t = arith_type(n->kind, l, r);

	if (t < 0) {
		fail_at(p, op_pos, "cannot compute %s %s %s", vtype_name(l), op_text(n->kind), vtype_name(r));
		return -1;
	}
	n->type = (enum vtype)t;
	return 0;
}

static int check_compare(struct parser *p, struct node *n, size_t op_pos)
{
	enum vtype l = n->kids[0]->type, r = n->kids[1]->type;
	int equality = n->kind == NODE_EQ || n->kind == NODE_NE;

	n->type = TYPE_BOOL;
	if (l == TYPE_LIST || r == TYPE_LIST) {
		fail_at(p, op_pos, "a list can only follow 'in'");
		return -1;
	}
	if (loose(l) || loose(r) || l == r) {
		if (!equality && l == r && l == TYPE_BOOL) {
			fail_at(p, op_pos, "booleans can only be compared with == and !=");
			return -1;
		}
		return 0;
	}
	fail_at(p, op_pos, "cannot compare %s %s %s", vtype_name(l), op_text(n->kind), vtype_name(r));
	return -1;
}

/* A list is a value only right after `in`; anywhere else (not, and, or, the left of in) it is an error. */
static int no_list(struct parser *p, const struct node *n)
{
	if (n && n->type == TYPE_LIST) {
		fail_at(p, n->pos, "a list can only follow 'in'");
		return -1;
	}
	return 0;
}

/* ---- grammar --------------------------------------------------------------- */

static struct node *parse_or(struct parser *p);

enum argk { ARG_EVENTS, ARG_CASE, ARG_DUR, ARG_ATTR, ARG_SAME, ARG_NUMERIC };

struct func {
	const char *name;
	enum func_id id;
	int nargs;
	enum argk args[3];
	int result;                     /* a type, or -1: the type of the first argument */
};

static const struct func funcs[] = {
	{ "since", FN_SINCE, 1, { ARG_EVENTS }, TYPE_DUR },
	{ "count", FN_COUNT, 2, { ARG_EVENTS, ARG_DUR }, TYPE_NUM },
	{ "sum", FN_SUM, 3, { ARG_EVENTS, ARG_ATTR, ARG_DUR }, TYPE_NUM },
	{ "gap", FN_GAP, 1, { ARG_EVENTS }, TYPE_DUR },
	{ "age", FN_AGE, 0, { 0 }, TYPE_DUR },
	{ "open", FN_OPEN, 1, { ARG_CASE }, TYPE_NUM },
	{ "oldest", FN_OLDEST, 1, { ARG_CASE }, TYPE_DUR },
	{ "overdue", FN_OVERDUE, 1, { ARG_CASE }, TYPE_NUM },
	{ "min", FN_MIN, 2, { ARG_NUMERIC, ARG_SAME }, -1 },
	{ "max", FN_MAX, 2, { ARG_NUMERIC, ARG_SAME }, -1 },
	{ "abs", FN_ABS, 1, { ARG_NUMERIC }, -1 },
	{ "days", FN_DAYS, 1, { ARG_DUR }, TYPE_NUM },
};

static const struct func *find_func(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(funcs) / sizeof(funcs[0]); i++)
		if (strlen(funcs[i].name) == len && memcmp(funcs[i].name, name, len) == 0)
			return &funcs[i];
	return NULL;
}

/* A bare name (or string) naming event types, a set or a case. */
static int take_name_arg(struct parser *p, struct node *call, struct node *arg, enum argk kind)
{
	const char *name = arg->kind == NODE_NAME || (arg->kind == NODE_LIT && arg->type == TYPE_STR)
				   ? arg->text : NULL;

	if (!name || !name_is_valid(name, strlen(name))) {
		fail_at(p, arg->pos, "expected %s name here",
			kind == ARG_CASE ? "a case" : "an event type or set");
		return -1;
	}
	if (kind == ARG_CASE) {
		if (!config_find_case(p->cfg, name)) {
			fail_at(p, arg->pos, "unknown case '%s' (events.cases defines the cases)", name);
			return -1;
		}
	} else {
		const struct config_set *set = config_find_set(p->cfg, name);
		if (set) {
			call->types = (const char *const *)set->types;
			call->ntypes = set->ntypes;
		} else {
			call->ntypes = 1; /* types is pointed at text after the call is built */
		}
	}
	call->text = strdup(name);
	if (!call->text) {
		fail_at(p, arg->pos, "out of memory");
		return -1;
	}
	if (!call->types)
		call->types = (const char *const *)&call->text;
	if (call->ntypes && !(call->type_hashes = calloc(call->ntypes, sizeof(*call->type_hashes)))) {
		fail_at(p, arg->pos, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < call->ntypes; i++)
		call->type_hashes[i] = type_name_hash(call->types[i], strlen(call->types[i]));
	return 0;
}

static int check_call(struct parser *p, struct node *call, const struct func *f)
{
	if ((int)call->nkids != f->nargs) {
		fail_at(p, call->pos, "%s() takes %d argument%s, not %zu", f->name, f->nargs,
			f->nargs == 1 ? "" : "s", call->nkids);
		return -1;
	}
	for (int i = 0; i < f->nargs; i++) {
		struct node *arg = call->kids[i];
		enum vtype t = arg->type;
		switch (f->args[i]) {
		case ARG_EVENTS:
		case ARG_CASE:
			if (take_name_arg(p, call, arg, f->args[i]) < 0)
				return -1;
			break;
		case ARG_DUR:
			if (t != TYPE_DUR && !loose(t)) {
				fail_at(p, arg->pos, "%s() expects a duration here, not a %s", f->name, vtype_name(t));
				return -1;
			}
			break;
		case ARG_ATTR:
			if (arg->kind != NODE_LIT || t != TYPE_STR || !name_is_valid(arg->lit.str.s, arg->lit.str.len)) {
				fail_at(p, arg->pos, "%s() expects an attr name in quotes here", f->name);
				return -1;
			}
			call->text2 = strdup(arg->lit.str.s);
			call->attr = call->text2;
			break;
		case ARG_NUMERIC:
			if (t != TYPE_NUM && t != TYPE_DUR && !loose(t)) {
				fail_at(p, arg->pos, "%s() expects a number or duration, not a %s", f->name, vtype_name(t));
				return -1;
			}
			break;
		case ARG_SAME:
			if (!loose(t) && !loose(call->kids[0]->type) && t != call->kids[0]->type) {
				fail_at(p, arg->pos, "%s() needs two values of the same type, not %s and %s",
					f->name, vtype_name(call->kids[0]->type), vtype_name(t));
				return -1;
			}
			break;
		}
	}
	if (f->id == FN_COUNT || f->id == FN_SUM)
		p->uses_window = 1;
	call->fn = f->id;
	call->type = f->result >= 0 ? (enum vtype)f->result
		     : call->kids[0]->type == TYPE_NULL && call->nkids > 1 ? call->kids[1]->type
		     : call->kids[0]->type;
	return 0;
}

static struct node *parse_call(struct parser *p, size_t pos, const char *name, size_t len)
{
	const struct func *f = find_func(name, len);
	struct node *call;

	if (!f) {
		fail_at(p, pos, "unknown function '%.*s'", (int)len, name);
		return NULL;
	}
	if (!(call = node_new(p, NODE_CALL, pos)))
		return NULL;
	next(p); /* ( */
	if (p->tok.kind != TOK_RPAREN) {
		for (;;) {
			struct node *arg = parse_or(p);
			if (!arg || add_kid(p, call, arg) < 0)
				goto fail;
			if (p->tok.kind != TOK_COMMA)
				break;
			next(p);
		}
	}
	if (p->tok.kind != TOK_RPAREN) {
		fail_at(p, p->tok.pos, "expected ',' or ')' in the arguments of %s()", f->name);
		goto fail;
	}
	call->end = p->tok.pos + 1;
	next(p);
	if (check_call(p, call, f) < 0)
		goto fail;
	return call;
fail:
	node_free(call);
	return NULL;
}

static struct node *parse_name(struct parser *p)
{
	size_t pos = p->tok.pos, len = p->tok.len;
	const char *name = p->src + pos;
	struct node *n;

	if (tok_is_word(p, "true") || tok_is_word(p, "false") || tok_is_word(p, "null")) {
		if (!(n = node_new(p, NODE_LIT, pos)))
			return NULL;
		n->type = n->lit.type = name[0] == 'n' ? TYPE_NULL : TYPE_BOOL;
		n->lit.b = name[0] == 't';
		n->end = pos + len;
		next(p);
		return n;
	}
	if (tok_is_word(p, "and") || tok_is_word(p, "or") || tok_is_word(p, "not") || tok_is_word(p, "in")) {
		fail_at(p, pos, "expected a value, found '%.*s'", (int)len, name);
		return NULL;
	}
	next(p);
	if (p->tok.kind == TOK_LPAREN)
		return parse_call(p, pos, name, len);
	if (find_func(name, len)) {
		fail_at(p, pos, "'%.*s' is a function: call it as %.*s(...)", (int)len, name, (int)len, name);
		return NULL;
	}
	if (!(n = node_new(p, NODE_NAME, pos)) || !(n->text = strndup(name, len))) {
		node_free(n);
		fail_at(p, pos, "out of memory");
		return NULL;
	}
	n->end = pos + len;
	if (len > 32) {
		fail_at(p, pos, "name '%.*s' is longer than 32 characters", (int)len, name);
		node_free(n);
		return NULL;
	}
	if (strcmp(n->text, "id") == 0) {
		n->name = NAME_ID;
		n->type = TYPE_STR;
	} else if (strcmp(n->text, "now") == 0) {
		n->name = NAME_NOW;
		n->type = TYPE_TIME;
	} else {
		n->name = NAME_PROFILE;
		n->type = TYPE_ANY;
	}
	return n;
}

static struct node *parse_list(struct parser *p)
{
	struct node *list = node_new(p, NODE_LIST, p->tok.pos);

	if (!list)
		return NULL;
	list->type = TYPE_LIST;
	next(p);
	if (p->tok.kind != TOK_RBRACK) {
		for (;;) {
			struct node *item = parse_or(p);
			if (!item || add_kid(p, list, item) < 0)
				goto fail;
			if (item->type == TYPE_LIST) {
				fail_at(p, item->pos, "lists cannot be nested");
				goto fail;
			}
			if (p->tok.kind != TOK_COMMA)
				break;
			next(p);
		}
	}
	if (p->tok.kind != TOK_RBRACK) {
		fail_at(p, p->tok.pos, "expected ',' or ']' in a list");
		goto fail;
	}
	list->end = p->tok.pos + 1;
	next(p);
	return list;
fail:
	node_free(list);
	return NULL;
}

static struct node *parse_atom(struct parser *p)
{
	struct node *n;

	switch (p->tok.kind) {
	case TOK_NUM:
	case TOK_DUR:
	case TOK_STR:
		if (!(n = node_new(p, NODE_LIT, p->tok.pos)))
			return NULL;
		n->end = p->tok.pos + p->tok.len;
		if (p->tok.kind == TOK_NUM) {
			n->type = n->lit.type = TYPE_NUM;
			n->lit.num = p->tok.num;
		} else if (p->tok.kind == TOK_DUR) {
			n->type = n->lit.type = TYPE_DUR;
			n->lit.ms = p->tok.ms;
		} else {
			n->type = n->lit.type = TYPE_STR;
			n->text = p->tok.str;
			p->tok.str = NULL;
			n->lit.str.s = n->text;
			n->lit.str.len = strlen(n->text);
		}
		next(p);
		return n;
	case TOK_NAME:
		return parse_name(p);
	case TOK_LBRACK:
		return parse_list(p);
	case TOK_LPAREN: {
		size_t open = p->tok.pos;
		next(p);
		n = parse_or(p);
		if (!n)
			return NULL;
		if (p->tok.kind != TOK_RPAREN) {
			fail_at(p, p->tok.pos, "expected ')' to close the '(' at column offset %zu", open + 1);
			node_free(n);
			return NULL;
		}
		next(p);
		return n;
	}
	case TOK_END:
		fail_at(p, p->tok.pos, "expected a value, found the end of the expression");
		return NULL;
	default:
		fail_at(p, p->tok.pos, "expected a value, found '%.*s'", (int)p->tok.len, p->src + p->tok.pos);
		return NULL;
	}
}

static struct node *enter(struct parser *p)
{
	if (++p->depth > EXPR_DEPTH_MAX) {
		fail_at(p, p->tok.pos, "expression nested more than %d deep", EXPR_DEPTH_MAX);
		return NULL;
	}
	return (struct node *)1;
}

static struct node *parse_unary(struct parser *p)
{
	struct node *n, *kid;
	size_t pos = p->tok.pos;

	if (p->tok.kind != TOK_MINUS)
		return parse_atom(p);
	if (!enter(p))
		return NULL;
	next(p);
	kid = parse_unary(p);
	p->depth--;
	if (!kid)
		return NULL;
	if (kid->type != TYPE_NUM && kid->type != TYPE_DUR && !loose(kid->type)) {
		fail_at(p, pos, "cannot negate a %s", vtype_name(kid->type));
		node_free(kid);
		return NULL;
	}
	if (!(n = node_new(p, NODE_NEG, pos)) || add_kid(p, n, kid) < 0) {
		node_free(n);
		return NULL;
	}
	n->type = kid->type;
	return n;
}

static struct node *parse_binary_level(struct parser *p, int level);

/* sum and prod: left-associative arithmetic. */
static struct node *parse_binary_level(struct parser *p, int level)
{
	struct node *l = level == 0 ? parse_binary_level(p, 1) : parse_unary(p);

	while (l) {
		enum node_kind kind;
		if (level == 0 && p->tok.kind == TOK_PLUS)
			kind = NODE_ADD;
		else if (level == 0 && p->tok.kind == TOK_MINUS)
			kind = NODE_SUB;
		else if (level == 1 && p->tok.kind == TOK_STAR)
			kind = NODE_MUL;
		else if (level == 1 && p->tok.kind == TOK_SLASH)
			kind = NODE_DIV;
		else
			break;
		size_t op_pos = p->tok.pos;
		next(p);
		struct node *r = level == 0 ? parse_binary_level(p, 1) : parse_unary(p);
		if (!r) {
			node_free(l);
			return NULL;
		}
		l = binary(p, kind, op_pos, l, r);
		if (l && check_arith(p, l, op_pos) < 0) {
			node_free(l);
			return NULL;
		}
	}
	return l;
}

static struct node *parse_cmp(struct parser *p)
{
	static const struct { enum tok_kind tok; enum node_kind kind; } cmps[] = {
		{ TOK_EQ, NODE_EQ }, { TOK_NE, NODE_NE }, { TOK_LT, NODE_LT },
		{ TOK_LE, NODE_LE }, { TOK_GT, NODE_GT }, { TOK_GE, NODE_GE },
	};
	struct node *l = parse_binary_level(p, 0), *r;
	size_t op_pos = p->tok.pos;

	if (!l)
		return NULL;
	for (size_t i = 0; i < sizeof(cmps) / sizeof(cmps[0]); i++) {
		if (p->tok.kind != cmps[i].tok)
			continue;
		next(p);
		if (!(r = parse_binary_level(p, 0))) {
			node_free(l);
			return NULL;
		}
		l = binary(p, cmps[i].kind, op_pos, l, r);
		if (l && check_compare(p, l, op_pos) < 0) {
			node_free(l);
			return NULL;
		}
		return l;
	}
	int negated = 0;
	if (tok_is_word(p, "not")) {
		negated = 1;
		next(p);
		if (!tok_is_word(p, "in")) {
			fail_at(p, p->tok.pos, "expected 'in' after 'not'");
			node_free(l);
			return NULL;
		}
	}
	if (!tok_is_word(p, "in"))
		return l;
	if (no_list(p, l) < 0) {
		node_free(l);
		return NULL;
	}
	next(p);
	if (p->tok.kind != TOK_LBRACK) {
		fail_at(p, p->tok.pos, "expected a list '[...]' after 'in'");
		node_free(l);
		return NULL;
	}
	if (!(r = parse_list(p))) {
		node_free(l);
		return NULL;
	}
	l = binary(p, negated ? NODE_NOT_IN : NODE_IN, op_pos, l, r);
	if (l)
		l->type = TYPE_BOOL;
	return l;
}

static struct node *parse_not(struct parser *p)
{
	struct node *n, *kid;
	size_t pos = p->tok.pos;

	if (!tok_is_word(p, "not"))
		return parse_cmp(p);
	if (!enter(p))
		return NULL;
	next(p);
	kid = parse_not(p);
	p->depth--;
	if (!kid)
		return NULL;
	if (no_list(p, kid) < 0) {
		node_free(kid);
		return NULL;
	}
	if (!(n = node_new(p, NODE_NOT, pos)) || add_kid(p, n, kid) < 0) {
		node_free(n);
		return NULL;
	}
	n->type = TYPE_BOOL;
	return n;
}

static struct node *parse_logic(struct parser *p, const char *word, enum node_kind kind,
				struct node *(*sub)(struct parser *))
{
	struct node *l = sub(p);

	while (l && tok_is_word(p, word)) {
		size_t pos = p->tok.pos;
		if (no_list(p, l) < 0) {
			node_free(l);
			return NULL;
		}
		next(p);
		struct node *r = sub(p);
		if (!r || no_list(p, r) < 0) {
			node_free(l);
			node_free(r);
			return NULL;
		}
		l = binary(p, kind, pos, l, r);
		if (l)
			l->type = TYPE_BOOL;
	}
	return l;
}

static struct node *parse_and(struct parser *p)
{
	return parse_logic(p, "and", NODE_AND, parse_not);
}

static struct node *parse_or(struct parser *p)
{
	struct node *n;

	if (!enter(p))
		return NULL;
	n = parse_logic(p, "or", NODE_OR, parse_and);
	p->depth--;
	return n;
}

static uint64_t type_bit(const char *type)
{
	return cust_changed_bit(type_name_hash(type, strlen(type)));
}

/*
 * What in a customer's state the value of n reads, as the folds mark it
 * (cust_changed_bit): the types its calls count, the open and close types of
 * its cases, the profile; age() reads first_seen. Only `now` moves it besides.
 */
static uint64_t node_deps(const struct node *n, const struct config *cfg)
{
	const struct config_case *cc;
	uint64_t deps = 0;
	size_t first = 0;               /* a call's type, set or case name is no term of its own */

	if (!n)
		return 0;
	if (n->kind == NODE_NAME && n->name == NAME_PROFILE)
		deps |= type_bit("profile");
	if (n->kind == NODE_CALL) {
		switch (n->fn) {
		case FN_AGE:
			deps |= CUST_CHANGED_FIRST_SEEN;
			break;
		case FN_OPEN:
		case FN_OLDEST:
		case FN_OVERDUE:
			if (!(cc = config_find_case(cfg, n->text)))
				return CUST_CHANGED_ALL;
			deps |= type_bit(cc->open) | type_bit(cc->close);
			first = 1;
			break;
		case FN_SINCE:
		case FN_COUNT:
		case FN_SUM:
		case FN_GAP:
			for (size_t i = 0; i < n->ntypes; i++)
				deps |= cust_changed_bit(n->type_hashes[i]);
			first = 1;
			break;
		case FN_MIN:
		case FN_MAX:
		case FN_ABS:
		case FN_DAYS:
			break;
		}
	}
	for (size_t i = first; i < n->nkids; i++)
		deps |= node_deps(n->kids[i], cfg);
	return deps;
}

struct expr *expr_compile(const char *src, const struct config *cfg, char *msg, size_t size,
			  size_t *err_pos)
{
	struct parser p = { .src = src, .len = strlen(src), .cfg = cfg, .msg = msg, .msg_size = size };
	struct expr *e = NULL;
	struct node *root;

	*err_pos = 0;
	if (p.len > EXPR_TEXT_MAX) {
		snprintf(msg, size, "expression longer than %d bytes", EXPR_TEXT_MAX);
		return NULL;
	}
	next(&p);
	root = parse_or(&p);
	if (root && p.tok.kind != TOK_END)
		fail_at(&p, p.tok.pos, "unexpected '%.*s' after a complete expression",
			(int)p.tok.len, src + p.tok.pos);
	if (root && !p.failed && root->type == TYPE_LIST)
		fail_at(&p, root->pos, "a list can only follow 'in'");
	free(p.tok.str);
	if (p.failed || !root)
		goto fail;
	e = calloc(1, sizeof(*e));
	if (!e || !(e->src = strdup(src))) {
		snprintf(msg, size, "out of memory");
		goto fail;
	}
	e->root = root;
	e->uses_window = p.uses_window;
	e->deps = node_deps(root, cfg);
	return e;
fail:
	*err_pos = p.err_pos;
	node_free(root);
	free(e);
	return NULL;
}

void expr_free(struct expr *e)
{
	if (!e)
		return;
	node_free(e->root);
	free(e->src);
	free(e);
}

/* Terms worth explaining: calls and names, outermost first, each once. */
static void walk(const struct expr *e, const struct node *n, expr_term_fn fn, void *ctx)
{
	if (n->kind == NODE_CALL || n->kind == NODE_NAME) {
		fn(n, e->src + n->pos, n->end - n->pos, ctx);
		return;
	}
	for (size_t i = 0; i < n->nkids; i++)
		walk(e, n->kids[i], fn, ctx);
}

void expr_walk_terms(const struct expr *e, expr_term_fn fn, void *ctx)
{
	walk(e, e->root, fn, ctx);
}
