/* JSON text written into a wbuf as json-c writes it (see include/hearth/json_out.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "hearth/codec.h"
#include "hearth/json_out.h"
#include "hearth/units.h"

static void put_char(struct json_out *o, char c)
{
	wbuf_put(o->b, &c, 1);
}

/* json-c's json_escape_str: its short escapes, other controls as lower-case \u00xx */
static void put_escaped(struct json_out *o, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t run = 0;

	put_char(o, '"');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[6] = { '\\', 0, '0', '0' };
		size_t n = 2;

		switch (c) {
		case '\b': esc[1] = 'b'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		case '\f': esc[1] = 'f'; break;
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '/':
			if (!o->escape_slash)
				continue;
			esc[1] = '/';
			break;
		default:
			if (c >= ' ')
				continue;
			esc[1] = 'u';
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0xf];
			n = 6;
			break;
		}
		wbuf_put(o->b, s + run, i - run);
		wbuf_put(o->b, esc, n);
		run = i + 1;
	}
	wbuf_put(o->b, s + run, len - run);
	put_char(o, '"');
}

void json_out_open(struct json_out *o)
{
	put_char(o, '{');
}

void json_out_close(struct json_out *o)
{
	put_char(o, '}');
}

void json_out_key(struct json_out *o, const char *key)
{
	if (o->b->len && o->b->data[o->b->len - 1] != '{')
		put_char(o, ',');
	put_escaped(o, key, strlen(key));
	put_char(o, ':');
}

void json_out_str(struct json_out *o, const char *s, size_t len)
{
	put_escaped(o, s, len);
}

void json_out_cstr(struct json_out *o, const char *s)
{
	put_escaped(o, s, strlen(s));
}

void json_out_int64(struct json_out *o, int64_t v)
{
	char buf[I64_TEXT];

	wbuf_put(o->b, buf, i64_text(v, buf));
}

void json_out_double(struct json_out *o, double v)
{
	char buf[128], *p;
	int n;

	if (isnan(v)) {
		n = snprintf(buf, sizeof(buf), "NaN");
	} else if (isinf(v)) {
		n = snprintf(buf, sizeof(buf), "%s", v > 0 ? "Infinity" : "-Infinity");
	} else {
		n = snprintf(buf, sizeof(buf), "%.17g", v);
		/* json-c undoes a locale's decimal comma, and marks a whole number as a double */
		if ((p = strchr(buf, ',')))
			*p = '.';
		else
			p = strchr(buf, '.');
		int numeric = (buf[0] >= '0' && buf[0] <= '9') ||
			      (n > 1 && buf[0] == '-' && buf[1] >= '0' && buf[1] <= '9');
		if (numeric && !p && !strchr(buf, 'e') && n < (int)sizeof(buf) - 2) {
			memcpy(buf + n, ".0", 3);
			n += 2;
		}
	}
	wbuf_put(o->b, buf, (size_t)n);
}

void json_out_bool(struct json_out *o, int v)
{
	wbuf_put(o->b, v ? "true" : "false", v ? 4 : 5);
}

void json_out_null(struct json_out *o)
{
	wbuf_put(o->b, "null", 4);
}

void json_out_raw(struct json_out *o, const char *text, size_t len)
{
	size_t run = 0;

	if (o->escape_slash) {
		wbuf_put(o->b, text, len);
		return;
	}
	/* outside strings JSON has no '\\'; inside, each escape is a pair, "\\/" included */
	for (size_t i = 0; i + 1 < len; i++) {
		if (text[i] != '\\')
			continue;
		if (text[i + 1] == '/') {
			wbuf_put(o->b, text + run, i - run);
			run = i + 1;
		}
		i++;
	}
	wbuf_put(o->b, text + run, len - run);
}
