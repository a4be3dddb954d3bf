/*
 * Message templates (docs/RELAY.md): "{alert.summary} (owner {customer.owner})".
 * A placeholder is any dotted path into the PROTOCOL.md §4.4 body, plus two derived names
 * that read well on a phone: {status} (FIRING, STILL FIRING, RESOLVED) and
 * {icon}. A missing path expands to nothing rather than failing a delivery.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay.h"

struct json_object *json_at(struct json_object *o, const char *dotted)
{
	char key[128];

	while (o && *dotted) {
		const char *dot = strchr(dotted, '.');
		size_t n = dot ? (size_t)(dot - dotted) : strlen(dotted);
		if (n >= sizeof(key) || !json_object_is_type(o, json_type_object))
			return NULL;
		memcpy(key, dotted, n);
		key[n] = '\0';
		if (!json_object_object_get_ex(o, key, &o))
			return NULL;
		dotted += n + (dot ? 1 : 0);
	}
	return o;
}

struct derived {
	const char *name;
	const char *(*value)(struct json_object *body);
};

static const char *kind_of(struct json_object *body)
{
	const char *k = json_object_get_string(json_at(body, "kind"));
	return k ? k : "";
}

static const char *status_value(struct json_object *body)
{
	const char *k = kind_of(body);
	return strcmp(k, "resolved") == 0 ? "RESOLVED" : strcmp(k, "repeat") == 0 ? "STILL FIRING" : "FIRING";
}

static const char *icon_value(struct json_object *body)
{
	const char *sev = json_object_get_string(json_at(body, "alert.severity"));

	if (strcmp(kind_of(body), "resolved") == 0)
		return "✅";
	if (sev && strcmp(sev, "critical") == 0)
		return "🔴";
	if (sev && strcmp(sev, "warning") == 0)
		return "🟠";
	return "🔵";
}

static const struct derived derived_names[] = {
	{ "status", status_value },
	{ "icon", icon_value },
};

char *template_expand(const char *tpl, struct json_object *body)
{
	char *out = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&out, &size);

	if (!f)
		return NULL;
	for (const char *p = tpl; *p; p++) {
		if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
			fputc(*p++, f);
			continue;
		}
		const char *end = p[0] == '{' ? strchr(p, '}') : NULL;
		if (!end) {
			fputc(*p, f);
			continue;
		}
		char name[128];
		size_t n = (size_t)(end - p - 1);
		if (n >= sizeof(name)) {
			fputc(*p, f);
			continue;
		}
		memcpy(name, p + 1, n);
		name[n] = '\0';
		p = end;
		const char *text = NULL;
		for (size_t i = 0; i < sizeof(derived_names) / sizeof(derived_names[0]); i++)
			if (strcmp(name, derived_names[i].name) == 0)
				text = derived_names[i].value(body);
		if (!text) {
			struct json_object *v = json_at(body, name);
			if (v)
				text = json_object_is_type(v, json_type_string)
					? json_object_get_string(v)
					: json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
									     JSON_C_TO_STRING_NOSLASHESCAPE);
		}
		if (text)
			fputs(text, f);
	}
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}
