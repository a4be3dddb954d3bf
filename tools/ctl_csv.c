/*
 * CSV input for `hearthctl import` (PROTOCOL.md §8.4): RFC 4180 records (quoted cells,
 * "" for a quote, line breaks inside quotes, CRLF or LF) under a header
 * `customer,ts,type[,id,ref]` where every other column is an attribute. Each
 * record becomes one event object, built with json-c like every other event.
 *
 * This is the import's hot path, so a record is read straight out of the
 * reader's buffer into one reused cell buffer, and the only allocations per
 * record are json-c's own.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "hearth/limits.h"

/* A record this long is surely an unclosed quote swallowing the file. */
#define RECORD_MAX (2 * HEARTH_CONTROL_LINE)

typedef struct json_object *(*cell_fn)(const char *cell, size_t len);

struct column_kind {
	const char *name;               /* NULL: any other column, an attribute */
	cell_fn value;
	int required;
};

struct csv {
	struct reader *r;
	const char *name;
	long line;                      /* line breaks consumed so far */
	int after_cr;                   /* the last record ended at '\r' */
	char *rec;                      /* the cells of a record, each ended by NUL */
	size_t rec_len, rec_cap;
	size_t *cell;                   /* where each cell starts in rec */
	size_t ncells, cell_cap;
	size_t ncols;
	char *header;                   /* the header's cells, kept: column names are keys */
	const char **col_name;
	const struct column_kind **col_kind;
};

/* ---- cell values ------------------------------------------------------------------- */

static struct json_object *string_cell(const char *cell, size_t len)
{
	return json_object_new_string_len(cell, (int)len);
}

/* Digits only and within int64: that many unix ms. */
static int parse_int64(const char *s, size_t len, int64_t *out)
{
	int neg = len > 0 && s[0] == '-';
	uint64_t n = 0;

	if ((size_t)neg == len)
		return -1;
	for (size_t i = (size_t)neg; i < len; i++) {
		if (s[i] < '0' || s[i] > '9' || n > (UINT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (uint64_t)(s[i] - '0');
	}
	if (n > (uint64_t)INT64_MAX)
		return -1;
	*out = neg ? -(int64_t)n : (int64_t)n;
	return 0;
}

static struct json_object *ts_cell(const char *cell, size_t len)
{
	int64_t ms;

	if (cell[0] != '-' && parse_int64(cell, len, &ms) == 0)
		return json_object_new_int64(ms);
	return string_cell(cell, len);
}

enum number_kind { NOT_NUMBER, INTEGER, DECIMAL };

/* JSON's number grammar without exponents: "-12", "0", "129.5"; not "007" or "1.". */
static enum number_kind number_kind(const char *s, size_t len)
{
	size_t i = s[0] == '-', digits = i;

	while (i < len && s[i] >= '0' && s[i] <= '9')
		i++;
	if (i == digits || (s[digits] == '0' && i - digits > 1))
		return NOT_NUMBER;
	if (i == len)
		return INTEGER;
	if (s[i++] != '.' || i == len)
		return NOT_NUMBER;
	while (i < len && s[i] >= '0' && s[i] <= '9')
		i++;
	return i == len ? DECIMAL : NOT_NUMBER;
}

/* What a spreadsheet cell most likely meant: a number, a bool, or text. */
static struct json_object *attr_cell(const char *cell, size_t len)
{
	int64_t n;

	if (len == 4 && memcmp(cell, "true", 4) == 0)
		return json_object_new_boolean(1);
	if (len == 5 && memcmp(cell, "false", 5) == 0)
		return json_object_new_boolean(0);
	switch (number_kind(cell, len)) {
	case INTEGER:
		if (parse_int64(cell, len, &n) == 0)
			return json_object_new_int64(n);
		break;   /* past int64: kept as text rather than rounded */
	case DECIMAL:
		/* the cell's own digits are what gets sent, not a re-rounded double */
		return json_object_new_double_s(strtod(cell, NULL), cell);
	case NOT_NUMBER:
		break;
	}
	return string_cell(cell, len);
}

static const struct column_kind column_kinds[] = {
	{ "customer", string_cell, 1 },
	{ "ts", ts_cell, 1 },
	{ "type", string_cell, 1 },
	{ "id", string_cell, 0 },
	{ "ref", string_cell, 0 },
};
static const struct column_kind attr_column = { NULL, attr_cell, 0 };

#define NKINDS (sizeof(column_kinds) / sizeof(column_kinds[0]))

/* ---- records ----------------------------------------------------------------------- */

/* Bytes that end a run of plain cell text. */
static const unsigned char special[256] = {
	[','] = 1, ['"'] = 1, ['\n'] = 1, ['\r'] = 1,
};

static int rec_append(struct csv *c, const char *p, size_t n)
{
	if (c->rec_cap - c->rec_len < n + 1) {
		size_t cap = c->rec_cap ? c->rec_cap : 4096;
		while (cap - c->rec_len < n + 1)
			cap *= 2;
		char *rec = realloc(c->rec, cap);
		if (!rec)
			return -1;
		c->rec = rec;
		c->rec_cap = cap;
	}
	memcpy(c->rec + c->rec_len, p, n);
	c->rec_len += n;
	return 0;
}

static int cell_start(struct csv *c)
{
	if (c->ncells == c->cell_cap) {
		size_t cap = c->cell_cap ? c->cell_cap * 2 : 32;
		size_t *cell = realloc(c->cell, cap * sizeof(*cell));
		if (!cell)
			return -1;
		c->cell = cell;
		c->cell_cap = cap;
	}
	c->cell[c->ncells++] = c->rec_len;
	return 0;
}

static int cell_end(struct csv *c)
{
	return rec_append(c, "", 1);
}

static size_t cell_len(const struct csv *c, size_t i)
{
	size_t end = i + 1 < c->ncells ? c->cell[i + 1] : c->rec_len;
	return end - c->cell[i] - 1;
}

enum cell_state { PLAIN, QUOTED, QUOTE_SEEN };

/* Makes bytes available; 1 when there are some, 0 at the end, -1 with err. */
static int more(struct csv *c, struct herr *err)
{
	struct reader *r = c->r;
	int rc;

	if (r->pos < r->len)
		return 1;
	if ((rc = reader_fill(r)) < 0)
		return herr_set(err, HERR_IO, "cannot read (%s)", strerror(errno));
	return rc;
}

/* A record that ended at '\r' owns the '\n' right after it (CRLF). */
static int skip_lf(struct csv *c, struct herr *err)
{
	int rc;

	if (!c->after_cr)
		return 0;
	c->after_cr = 0;
	if ((rc = more(c, err)) <= 0)
		return rc;
	if (c->r->buf[c->r->pos] == '\n') {
		c->r->pos++;
		c->line++;
	}
	return 0;
}

/* Copies at once the run of bytes up to the next one that means something. */
static int take_run(struct csv *c, enum cell_state state)
{
	struct reader *r = c->r;
	const char *p = r->buf + r->pos, *end = r->buf + r->len, *q = p;

	if (state == PLAIN)
		while (q < end && !special[(unsigned char)*q])
			q++;
	else if (state == QUOTED)
		while (q < end && *q != '"' && *q != '\n')
			q++;
	r->pos += (size_t)(q - p);
	return q > p ? rec_append(c, p, (size_t)(q - p)) : 0;
}

/* One byte that means something; *ended when it ended the record. */
static int take_byte(struct csv *c, char ch, enum cell_state *state, int *ended)
{
	if (ch == '\n')
		c->line++;
	if (*state == QUOTED) {
		if (ch == '"') {
			*state = QUOTE_SEEN;
			return 0;
		}
		return rec_append(c, &ch, 1);
	}
	if (*state == QUOTE_SEEN && ch == '"') {
		*state = QUOTED;            /* "" inside quotes is one quote */
		return rec_append(c, &ch, 1);
	}
	*state = PLAIN;
	if (ch == ',')
		return cell_end(c) < 0 ? -1 : cell_start(c);
	if (ch == '\n' || ch == '\r') {
		c->after_cr = ch == '\r';
		*ended = 1;
		return 0;
	}
	if (ch == '"' && c->rec_len == c->cell[c->ncells - 1]) {
		*state = QUOTED;
		return 0;
	}
	/* a quote inside plain text, or text after a closing quote: kept as text */
	return rec_append(c, &ch, 1);
}

/*
 * Reads one record into c->rec and c->cell; *start is its first line. 1 for
 * a record, 0 at the end of the input, -1 with err.
 */
static int read_record(struct csv *c, long *start, struct herr *err)
{
	enum cell_state state = PLAIN;
	int rc = 0, ended = 0, empty = 1;

	c->rec_len = c->ncells = 0;
	if (skip_lf(c, err) < 0)
		return -1;
	*start = c->line + 1;
	if (cell_start(c) < 0)
		goto nomem;
	while (!ended && (rc = more(c, err)) > 0) {
		empty = 0;
		if (take_run(c, state) < 0)
			goto nomem;
		if (c->r->pos == c->r->len)
			continue;
		if (take_byte(c, c->r->buf[c->r->pos++], &state, &ended) < 0)
			goto nomem;
		if (c->rec_len > RECORD_MAX)
			return herr_set(err, HERR_BAD_FIELD,
					"record longer than %u bytes (a quote never closed?)", RECORD_MAX);
	}
	if (!ended && rc < 0)
		return -1;
	if (!ended && state == QUOTED)
		return herr_set(err, HERR_BAD_FIELD, "the file ends inside a quoted cell");
	if (empty)
		return 0;
	if (cell_end(c) < 0)
		goto nomem;
	return 1;
nomem:
	return herr_set(err, HERR_NOMEM, "out of memory");
}

/* ---- the header -------------------------------------------------------------------- */

int csv_looks_like_header(const char *line, size_t len)
{
	return (len >= 9 && memcmp(line, "customer,", 9) == 0) ||
	       (len >= 11 && memcmp(line, "\"customer\",", 11) == 0);
}

static char *trim(char *s)
{
	size_t n;

	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

static const struct column_kind *kind_of(const char *name)
{
	for (size_t i = 0; i < NKINDS; i++)
		if (strcmp(column_kinds[i].name, name) == 0)
			return &column_kinds[i];
	return &attr_column;
}

/* Names every column and checks the header names what an event needs. */
static int take_header(struct csv *c, struct herr *err)
{
	c->ncols = c->ncells;
	c->header = malloc(c->rec_len);
	c->col_name = calloc(c->ncols, sizeof(*c->col_name));
	c->col_kind = calloc(c->ncols, sizeof(*c->col_kind));
	if (!c->header || !c->col_name || !c->col_kind)
		return herr_set(err, HERR_NOMEM, "out of memory");
	memcpy(c->header, c->rec, c->rec_len);
	for (size_t i = 0; i < c->ncols; i++) {
		c->col_name[i] = trim(c->header + c->cell[i]);
		c->col_kind[i] = kind_of(c->col_name[i]);
		if (!c->col_name[i][0])
			return herr_set(err, HERR_BAD_FIELD, "column %zu of the header has no name", i + 1);
		for (size_t j = 0; j < i; j++)
			if (strcmp(c->col_name[i], c->col_name[j]) == 0)
				return herr_set(err, HERR_BAD_FIELD, "column '%s' appears twice",
						c->col_name[i]);
	}
	for (size_t k = 0; k < NKINDS; k++) {
		size_t i = 0;
		while (i < c->ncols && c->col_kind[i] != &column_kinds[k])
			i++;
		if (column_kinds[k].required && i == c->ncols)
			return herr_set(err, HERR_BAD_FIELD,
					"the header has no '%s' column (customer,ts,type[,id,ref], then attributes)",
					column_kinds[k].name);
	}
	return 0;
}

struct csv *csv_open(struct reader *r, const char *name, struct herr *err)
{
	struct csv *c = calloc(1, sizeof(*c));
	long line;
	int rc;

	if (!c) {
		herr_set(err, HERR_NOMEM, "out of memory");
		return NULL;
	}
	c->r = r;
	c->name = name;
	rc = read_record(c, &line, err);
	if (rc == 0)
		herr_set(err, HERR_BAD_FIELD, "empty file, no CSV header");
	if (rc <= 0 || take_header(c, err) < 0) {
		struct herr why = *err;
		herr_set(err, why.code, "%s:%ld: %s", name, rc == 0 ? 1L : line, why.msg);
		csv_free(c);
		return NULL;
	}
	return c;
}

void csv_free(struct csv *c)
{
	if (!c)
		return;
	free(c->rec);
	free(c->cell);
	free(c->header);
	free(c->col_name);
	free(c->col_kind);
	free(c);
}

/* ---- records to events ------------------------------------------------------------- */

/* Adds under a header name, which outlives the event (json-c need not copy it). */
static int add_cell(struct json_object *to, const char *key, struct json_object *v)
{
	if (!v)
		return -1;
	if (json_object_object_add_ex(to, key, v, JSON_C_OBJECT_ADD_KEY_IS_NEW |
						      JSON_C_OBJECT_ADD_CONSTANT_KEY) < 0) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

static struct json_object *record_event(const struct csv *c)
{
	struct json_object *ev = json_object_new_object(), *attrs = NULL;

	if (!ev)
		return NULL;
	for (size_t i = 0; i < c->ncols; i++) {
		const char *cell = c->rec + c->cell[i];
		size_t len = cell_len(c, i);
		const struct column_kind *kind = c->col_kind[i];
		struct json_object *to = ev;

		if (len == 0)
			continue;       /* an empty cell is an absent field */
		if (kind == &attr_column) {
			if (!attrs && (!(attrs = json_object_new_object()) ||
				       add_cell(ev, "attrs", attrs) < 0))
				goto fail;
			to = attrs;
		}
		if (add_cell(to, c->col_name[i], kind->value(cell, len)) < 0)
			goto fail;
	}
	return ev;
fail:
	json_object_put(ev);
	return NULL;
}

enum src_status csv_next(struct csv *c, struct json_object **event, long *line,
			 struct herr *err)
{
	for (;;) {
		int rc = read_record(c, line, err);
		if (rc < 0)
			return SRC_FAIL;
		if (rc == 0)
			return SRC_END;
		if (c->ncells == 1 && cell_len(c, 0) == 0)
			continue;       /* a blank line */
		if (c->ncells != c->ncols) {
			herr_set(err, HERR_BAD_FIELD, "the record has %zu cells where the header has %zu",
				 c->ncells, c->ncols);
			return SRC_REJECT;
		}
		*event = record_event(c);
		if (!*event) {
			herr_set(err, HERR_NOMEM, "out of memory");
			return SRC_FAIL;
		}
		return SRC_EVENT;
	}
}
