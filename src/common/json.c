/* Parsing JSON text by its length with a reused tokener (see hearth/json.h). */
#include <pthread.h>
#include <json-c/json.h>

#include "hearth/json.h"

int json_only_space(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
			return 0;
	return 1;
}

struct json_object *json_parse_whole(struct json_tokener *tok, const char *text, size_t len,
				     struct herr *err)
{
	struct json_object *v;
	size_t end;

	if (len > (size_t)INT32_MAX) {
		herr_set(err, HERR_TOO_LARGE, "JSON text of %zu bytes is too large", len);
		return NULL;
	}
	json_tokener_reset(tok);
	v = json_tokener_parse_ex(tok, text, (int)len);
	if (!v && json_tokener_get_error(tok) == json_tokener_continue) {
		/* json-c waits for more after a bare number; an empty final chunk ends it */
		v = json_tokener_parse_ex(tok, "", 1);
		end = len;
	} else {
		end = json_tokener_get_parse_end(tok);
	}
	if (!v) {
		herr_set(err, HERR_BAD_JSON, "not valid JSON: %s",
			 json_tokener_error_desc(json_tokener_get_error(tok)));
		return NULL;
	}
	if (end < len && !json_only_space(text + end, len - end)) {
		json_object_put(v);
		herr_set(err, HERR_BAD_JSON, "not valid JSON: text after the value at byte %zu", end + 1);
		return NULL;
	}
	return v;
}

/*
 * A tokener per thread, kept: json_tokener_new() is four allocations, and the
 * writer parses the attrs of many events one at a time (1% of its time).
 */
static pthread_key_t tokener_key;
static pthread_once_t tokener_once = PTHREAD_ONCE_INIT;
static int tokener_key_made;

static void free_tokener(void *tok)
{
	json_tokener_free(tok);
}

static void make_tokener_key(void)
{
	tokener_key_made = pthread_key_create(&tokener_key, free_tokener) == 0;
}

static struct json_tokener *thread_tokener(void)
{
	struct json_tokener *tok;

	if (pthread_once(&tokener_once, make_tokener_key) != 0 || !tokener_key_made)
		return NULL;
	if ((tok = pthread_getspecific(tokener_key)))
		return tok;
	if ((tok = json_tokener_new()) && pthread_setspecific(tokener_key, tok) != 0) {
		json_tokener_free(tok);
		tok = NULL;
	}
	return tok;
}

struct json_object *json_parse_once(const char *text, size_t len)
{
	struct json_tokener *kept = thread_tokener();
	struct json_tokener *tok = kept ? kept : json_tokener_new();
	struct json_object *v = tok ? json_parse_whole(tok, text, len, NULL) : NULL;

	if (tok && !kept)
		json_tokener_free(tok);
	return v;
}
