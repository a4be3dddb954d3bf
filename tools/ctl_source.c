/*
 * Events from one input file for `hearthctl import`: JSON lines, one JSON
 * array, or CSV (ctl_csv.c). The format is told by the extension .csv or by
 * the first bytes, and every format is read as a stream through one bounded
 * buffer, so a file of any size costs the same memory. Each event comes back
 * with the position an operator needs to find it again: its line, the first
 * line of its CSV record, or its element number in an array.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "hearth/json.h"
#include "hearth/limits.h"

/* Longer than this, an event cannot fit in one control request line (PROTOCOL.md §5.1). */
#define ELEMENT_MAX  (HEARTH_CONTROL_LINE - 64)

enum format { FORMAT_LINES, FORMAT_ARRAY, FORMAT_CSV };

/* Where the array scanner stands between elements. */
enum array_state { ARRAY_OPEN, ARRAY_ELEMENT, ARRAY_DONE };

struct source {
	const char *path;
	struct reader r;
	enum format format;
	uint64_t size;
	struct json_tokener *tok;
	struct csv *csv;
	long line;                      /* JSON lines: lines read so far */
	long index;                     /* array: elements read so far */
	enum array_state array;
	char *elem;                     /* array: the element being read */
	size_t elem_len, elem_cap;
};

/* ---- opening and telling the format ------------------------------------------------ */

static int has_csv_extension(const char *path)
{
	size_t n = strlen(path);
	return n >= 4 && strcasecmp(path + n - 4, ".csv") == 0;
}

static enum format sniff(struct source *s)
{
	const char *p = s->r.buf + s->r.pos, *end = s->r.buf + s->r.len;
	const char *nl = memchr(p, '\n', (size_t)(end - p));

	if (has_csv_extension(s->path) || csv_looks_like_header(p, (size_t)((nl ? nl : end) - p)))
		return FORMAT_CSV;
	while (p < end && json_only_space(p, 1))
		p++;
	return p < end && *p == '[' ? FORMAT_ARRAY : FORMAT_LINES;
}

static int source_start(struct source *s, struct herr *err)
{
	if (reader_fill(&s->r) < 0)
		return herr_set(err, HERR_IO, "%s: cannot read (%s)", s->path, strerror(errno));
	if (s->r.len >= 3 && memcmp(s->r.buf, "\xEF\xBB\xBF", 3) == 0)
		s->r.pos = 3;   /* a UTF-8 byte order mark, as spreadsheets write it */
	s->format = sniff(s);
	if (s->format == FORMAT_CSV) {
		s->csv = csv_open(&s->r, s->path, err);
		return s->csv ? 0 : -1;
	}
	s->tok = json_tokener_new_ex(JSON_TOKENER_DEFAULT_DEPTH);
	if (!s->tok)
		return herr_set(err, HERR_NOMEM, "out of memory");
	/* the daemon parses strictly; so do we, so that a rejection is the same here */
	json_tokener_set_flags(s->tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	return 0;
}

struct source *source_open(const char *path, struct herr *err)
{
	struct source *s = calloc(1, sizeof(*s));
	struct stat st;

	if (!s) {
		herr_set(err, HERR_NOMEM, "out of memory");
		return NULL;
	}
	s->path = path;
	s->r.fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	s->r.limit = ELEMENT_MAX + READ_CHUNK;
	if (s->r.fd < 0) {
		herr_set(err, HERR_IO, "%s: cannot open (%s)", path, strerror(errno));
		goto fail;
	}
	if (fstat(s->r.fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		herr_set(err, HERR_IO, "%s: is a directory", path);
		goto fail;
	}
	if (S_ISREG(st.st_mode))
		s->size = (uint64_t)st.st_size;
	if (source_start(s, err) < 0)
		goto fail;
	return s;
fail:
	source_close(s);
	return NULL;
}

void source_close(struct source *s)
{
	if (!s)
		return;
	csv_free(s->csv);
	if (s->tok)
		json_tokener_free(s->tok);
	if (s->r.fd > STDIN_FILENO)
		close(s->r.fd);
	free(s->r.buf);
	free(s->elem);
	free(s);
}

uint64_t source_done_bytes(const struct source *s)
{
	return s->r.bytes_read - (s->r.len - s->r.pos);
}

uint64_t source_size(const struct source *s)
{
	return s->size;
}

/* ---- JSON lines -------------------------------------------------------------------- */

/* Skips the rest of an overlong line without holding it. */
static enum src_status skip_line(struct source *s, struct herr *err)
{
	for (;;) {
		char *nl = memchr(s->r.buf + s->r.pos, '\n', s->r.len - s->r.pos);
		if (nl) {
			s->r.pos = (size_t)(nl - s->r.buf) + 1;
			break;
		}
		s->r.pos = s->r.len;
		int rc = reader_fill(&s->r);
		if (rc < 0)
			goto fail;
		if (rc == 0)
			break;
	}
	herr_set(err, HERR_TOO_LARGE, "line longer than %u bytes", ELEMENT_MAX);
	return SRC_REJECT;
fail:
	herr_set(err, HERR_IO, "cannot read (%s)", strerror(errno));
	return SRC_FAIL;
}

static enum src_status next_line(struct source *s, struct json_object **event, long *line,
				 struct herr *err)
{
	for (;;) {
		char *p = s->r.buf + s->r.pos;
		size_t avail = s->r.len - s->r.pos;
		char *nl = memchr(p, '\n', avail);

		if (!nl && avail < ELEMENT_MAX && !s->r.eof) {
			if (reader_fill(&s->r) < 0) {
				herr_set(err, HERR_IO, "cannot read (%s)", strerror(errno));
				return SRC_FAIL;
			}
			continue;
		}
		if (!nl && avail == 0)
			return SRC_END;
		*line = ++s->line;
		if (!nl && !s->r.eof)
			return skip_line(s, err);
		size_t len = nl ? (size_t)(nl - p) : avail;
		s->r.pos += nl ? len + 1 : len;
		if (json_only_space(p, len))
			continue;
		*event = json_parse_whole(s->tok, p, len, err);
		return *event ? SRC_EVENT : SRC_REJECT;
	}
}

/* ---- one JSON array ---------------------------------------------------------------- */

static int next_byte(struct source *s, char *c, struct herr *err)
{
	if (s->r.pos == s->r.len) {
		int rc = reader_fill(&s->r);
		if (rc < 0)
			return herr_set(err, HERR_IO, "cannot read (%s)", strerror(errno));
		if (rc == 0)
			return 0;
	}
	*c = s->r.buf[s->r.pos++];
	return 1;
}

static int skip_space(struct source *s, char *c, struct herr *err)
{
	int rc;

	while ((rc = next_byte(s, c, err)) == 1 && json_only_space(c, 1))
		;
	return rc;
}

static int elem_add(struct source *s, char c)
{
	if (s->elem_len == s->elem_cap) {
		if (s->elem_cap >= ELEMENT_MAX)
			return 0;       /* too large: keep scanning, stop keeping */
		size_t cap = s->elem_cap ? s->elem_cap * 2 : 4096;
		char *p = realloc(s->elem, cap);
		if (!p)
			return -1;
		s->elem = p;
		s->elem_cap = cap;
	}
	s->elem[s->elem_len++] = c;
	return 0;
}

/*
 * Collects one element's text, first byte given, up to the ',' or ']' that
 * ends it outside any string, which is left in *term.
 */
static int scan_element(struct source *s, char c, char *term, int *overflow, struct herr *err)
{
	int depth = 0, in_string = 0, escaped = 0, rc;

	s->elem_len = 0;
	*overflow = 0;
	for (;;) {
		if (!in_string && depth == 0 && (c == ',' || c == ']')) {
			*term = c;
			return 0;
		}
		if (in_string) {
			if (escaped)
				escaped = 0;
			else if (c == '\\')
				escaped = 1;
			else if (c == '"')
				in_string = 0;
		} else if (c == '"') {
			in_string = 1;
		} else if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			depth--;
		}
		if (elem_add(s, c) < 0)
			return herr_set(err, HERR_NOMEM, "out of memory");
		if (s->elem_len == s->elem_cap && s->elem_cap >= ELEMENT_MAX)
			*overflow = 1;
		if ((rc = next_byte(s, &c, err)) <= 0)
			return rc < 0 ? -1 : herr_set(err, HERR_BAD_JSON,
						      "the file ends inside element %ld", s->index);
	}
}

static enum src_status next_element(struct source *s, struct json_object **event, long *line,
				    struct herr *err)
{
	char c = 0, term = 0;
	int rc, overflow;

	if (s->array == ARRAY_DONE)
		return SRC_END;
	*line = s->index + 1;
	rc = skip_space(s, &c, err);
	if (rc < 0)
		return SRC_FAIL;
	if (s->array == ARRAY_OPEN) {
		if (rc == 0 || c != '[')
			goto not_array;
		s->array = ARRAY_ELEMENT;
		if ((rc = skip_space(s, &c, err)) < 0)
			return SRC_FAIL;
		if (rc == 1 && c == ']') {
			s->array = ARRAY_DONE;
			return SRC_END;
		}
	}
	if (rc == 0)
		goto not_array;
	*line = ++s->index;
	if (scan_element(s, c, &term, &overflow, err) < 0)
		return SRC_FAIL;
	if (term == ']')
		s->array = ARRAY_DONE;
	if (overflow) {
		herr_set(err, HERR_TOO_LARGE, "element longer than %u bytes", ELEMENT_MAX);
		return SRC_REJECT;
	}
	if (json_only_space(s->elem, s->elem_len)) {
		herr_set(err, HERR_BAD_JSON, "not valid JSON: an empty array element");
		return SRC_REJECT;
	}
	*event = json_parse_whole(s->tok, s->elem, s->elem_len, err);
	return *event ? SRC_EVENT : SRC_REJECT;
not_array:
	herr_set(err, HERR_BAD_JSON, "not valid JSON: the array is not closed with ']'");
	return SRC_FAIL;
}

enum src_status source_next(struct source *s, struct json_object **event, long *line,
			    struct herr *err)
{
	*event = NULL;
	switch (s->format) {
	case FORMAT_CSV:
		return csv_next(s->csv, event, line, err);
	case FORMAT_ARRAY:
		return next_element(s, event, line, err);
	case FORMAT_LINES:
		break;
	}
	return next_line(s, event, line, err);
}
