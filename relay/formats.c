/*
 * Target types (docs/RELAY.md) as a table: each knows its service's message shape,
 * its default template (readable on a phone), and how its URL is signed.
 * A builder gets the alerts of one message (one, or several when grouped) and
 * returns the URL and JSON body to post; it never logs (the URL may hold a
 * token, the secret signs the request).
 */
#include <curl/curl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/units.h"
#include "relay.h"

#define JSON_OUT (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/*
 * Default texts, [LOCALE_EN] and [LOCALE_ZH]. {rule}, {severity}, {status} and
 * {when} are in the target's language; the rule's own name stays in the
 * Chinese ones (规则 …) so that it can still be searched for.
 */
static const char *const slack_default[LOCALE_COUNT] = {
	"{icon} *{status}* · {rule} ({severity})\n"
	"*{customer.name}* ({alert.customer}) · owner {customer.owner}\n"
	"{alert.summary}\n"
	"{when} · seq {seq}{link_line}",
	"{icon} *{status}*：{rule}（{severity}）\n"
	"*{customer.name}*（{alert.customer}）· 负责人 {customer.owner}\n"
	"{alert.summary}\n"
	"{when} · 规则 {alert.rule} · 序号 {seq}{link_line}",
};
static const char *const markdown_default[LOCALE_COUNT] = {
	"### {icon} {status}: {rule}\n\n"
	"**{customer.name}** ({alert.customer}) · owner {customer.owner} · {severity}\n\n"
	"{alert.summary}\n\n"
	"{when} · seq {seq}{link_line}",
	"### {icon} {status}：{rule}\n\n"
	"**{customer.name}**（{alert.customer}）· 负责人 {customer.owner} · {severity}\n\n"
	"{alert.summary}\n\n"
	"{when} · 规则 {alert.rule} · 序号 {seq}{link_line}",
};
static const char *const wecom_default[LOCALE_COUNT] = {
	"**{icon} {status}: {rule}** ({severity})\n"
	"> {customer.name} ({alert.customer}) · owner {customer.owner}\n"
	"> {alert.summary}\n"
	"> {when} · seq {seq}{link_line}",
	"**{icon} {status}：{rule}**（{severity}）\n"
	"> {customer.name}（{alert.customer}）· 负责人 {customer.owner}\n"
	"> {alert.summary}\n"
	"> {when} · 规则 {alert.rule} · 序号 {seq}{link_line}",
};
static const char *const text_default[LOCALE_COUNT] = {
	"{icon} {status}: {rule} ({severity})\n"
	"{customer.name} ({alert.customer}) · owner {customer.owner}\n"
	"{alert.summary}\n"
	"{when} · seq {seq}{link_line}",
	"{icon} {status}：{rule}（{severity}）\n"
	"{customer.name}（{alert.customer}）· 负责人 {customer.owner}\n"
	"{alert.summary}\n"
	"{when} · 规则 {alert.rule} · 序号 {seq}{link_line}",
};
/* titles and summaries of cards (Teams) and of DingTalk's markdown */
static const char *const title_default[LOCALE_COUNT] = {
	"{icon} {status}: {rule} · {customer.name}", "{icon} {status}：{rule} · {customer.name}",
};
static const char *const title_several[LOCALE_COUNT] = { "hearth: several alerts", "hearth：多条告警" };
static const char *const summary_default[LOCALE_COUNT] = { "{status}: {alert.summary}", "{status}：{alert.summary}" };
static const char *const robot_title[LOCALE_COUNT] = { "{status}: {rule}", "{status}：{rule}" };

static int loc(const struct target_conf *tc)
{
	return tc->locale == LOCALE_ZH ? LOCALE_ZH : LOCALE_EN;
}

void message_clear(struct message *msg)
{
	free(msg->url);
	free(msg->body);
	msg->url = msg->body = NULL;
}

/* The texts of n alerts from the target's template (or def), joined by sep. */
static char *render(const struct target_conf *tc, const char *const *def, struct json_object **bodies,
		    size_t n, const char *sep)
{
	char *out = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&out, &size);

	if (!f)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		char *t = template_expand(tc->template ? tc->template : def[loc(tc)], bodies[i], tc);
		if (!t) {
			fclose(f);
			free(out);
			return NULL;
		}
		fprintf(f, "%s%s", i ? sep : "", t);
		free(t);
	}
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

/* Takes ownership of obj: its JSON text becomes msg->body. */
static int finish(const char *url, struct json_object *obj, struct message *msg, struct herr *err)
{
	msg->body = obj ? strdup(json_object_to_json_string_ext(obj, JSON_OUT)) : NULL;
	msg->url = msg->url ? msg->url : strdup(url);
	json_object_put(obj);
	if (!msg->body || !msg->url) {
		message_clear(msg);
		return herr_set(err, HERR_NOMEM, "out of memory");
	}
	return 0;
}

static struct json_object *jstr(const char *s)
{
	return json_object_new_string(s ? s : "");
}

static int build_webhook(const struct target_conf *tc, struct json_object **bodies, size_t n,
			 struct message *msg, struct herr *err)
{
	struct json_object *obj;

	if (n == 1) {
		obj = json_object_get(bodies[0]);
	} else {
		obj = json_object_new_array();
		for (size_t i = 0; i < n; i++)
			json_object_array_add(obj, json_object_get(bodies[i]));
	}
	return finish(tc->url, obj, msg, err);
}

static int build_slack(const struct target_conf *tc, struct json_object **bodies, size_t n,
		       struct message *msg, struct herr *err)
{
	char *text = render(tc, slack_default, bodies, n, "\n\n");
	struct json_object *obj = json_object_new_object();

	json_object_object_add(obj, "text", jstr(text));
	free(text);
	return finish(tc->url, obj, msg, err);
}

static const char *severity_color(struct json_object *body)
{
	const char *sev = json_object_get_string(json_at(body, "alert.severity"));
	const char *kind = json_object_get_string(json_at(body, "kind"));

	if (kind && strcmp(kind, "resolved") == 0)
		return "2EB886";
	if (sev && strcmp(sev, "critical") == 0)
		return "D93025";
	if (sev && strcmp(sev, "warning") == 0)
		return "F2A100";
	return "1E88E5";
}

/* Office 365 connector MessageCard: Teams renders its text as markdown. */
static struct json_object *text_block(const char *text, const char *weight)
{
	struct json_object *b = json_object_new_object();

	json_object_object_add(b, "type", jstr("TextBlock"));
	json_object_object_add(b, "text", jstr(text));
	json_object_object_add(b, "wrap", json_object_new_boolean(1));
	if (weight) {
		json_object_object_add(b, "weight", jstr(weight));
		json_object_object_add(b, "size", jstr("Medium"));
	}
	return b;
}

/* Teams workflows (Power Automate) webhooks take an Adaptive Card in a message. */
static struct json_object *adaptive_card(const char *title, const char *text)
{
	struct json_object *msg = json_object_new_object(), *atts = json_object_new_array();
	struct json_object *att = json_object_new_object(), *card = json_object_new_object();
	struct json_object *body = json_object_new_array();

	json_object_array_add(body, text_block(title, "Bolder"));
	json_object_array_add(body, text_block(text, NULL));
	json_object_object_add(card, "$schema", jstr("http://adaptivecards.io/schemas/adaptive-card.json"));
	json_object_object_add(card, "type", jstr("AdaptiveCard"));
	json_object_object_add(card, "version", jstr("1.4"));
	json_object_object_add(card, "body", body);
	json_object_object_add(att, "contentType", jstr("application/vnd.microsoft.card.adaptive"));
	json_object_object_add(att, "contentUrl", NULL);
	json_object_object_add(att, "content", card);
	json_object_array_add(atts, att);
	json_object_object_add(msg, "type", jstr("message"));
	json_object_object_add(msg, "attachments", atts);
	return msg;
}

static int build_teams(const struct target_conf *tc, struct json_object **bodies, size_t n,
		       struct message *msg, struct herr *err)
{
	char *text = render(tc, markdown_default, bodies, n, "\n\n---\n\n");
	char *title = template_expand(n == 1 ? title_default[loc(tc)] : title_several[loc(tc)], bodies[0], tc);
	char *summary = template_expand(summary_default[loc(tc)], bodies[0], tc);
	struct json_object *obj;

	if (tc->format == 1) {
		obj = adaptive_card(title ? title : "", text ? text : "");
		free(text);
		free(title);
		free(summary);
		return finish(tc->url, obj, msg, err);
	}
	obj = json_object_new_object();
	json_object_object_add(obj, "@type", jstr("MessageCard"));
	json_object_object_add(obj, "@context", jstr("https://schema.org/extensions"));
	json_object_object_add(obj, "themeColor", jstr(severity_color(bodies[0])));
	json_object_object_add(obj, "summary", jstr(summary));
	json_object_object_add(obj, "title", jstr(title));
	json_object_object_add(obj, "text", jstr(text));
	free(text);
	free(title);
	free(summary);
	return finish(tc->url, obj, msg, err);
}

static int build_wecom(const struct target_conf *tc, struct json_object **bodies, size_t n,
		       struct message *msg, struct herr *err)
{
	int markdown = tc->format == 0;
	char *text = render(tc, markdown ? wecom_default : text_default, bodies, n, "\n\n");
	struct json_object *obj = json_object_new_object(), *md = json_object_new_object();

	json_object_object_add(md, "content", jstr(text));
	json_object_object_add(obj, "msgtype", jstr(markdown ? "markdown" : "text"));
	json_object_object_add(obj, markdown ? "markdown" : "text", md);
	free(text);
	return finish(tc->url, obj, msg, err);
}

/*
 * DingTalk: the signature rides in the query, timestamp in ms, over
 * "timestamp\nsecret" keyed by the secret, base64 then URL-encoded.
 */
static int build_dingtalk(const struct target_conf *tc, struct json_object **bodies, size_t n,
			  struct message *msg, struct herr *err)
{
	int markdown = tc->format == 0;
	char *text = render(tc, markdown ? markdown_default : text_default, bodies, n,
			    markdown ? "\n\n---\n\n" : "\n\n");
	char *title = template_expand(robot_title[loc(tc)], bodies[0], tc);
	struct json_object *obj = json_object_new_object(), *md = json_object_new_object();

	if (markdown) {
		json_object_object_add(md, "title", jstr(title));
		json_object_object_add(md, "text", jstr(text));
	} else {
		json_object_object_add(md, "content", jstr(text));
	}
	json_object_object_add(obj, "msgtype", jstr(markdown ? "markdown" : "text"));
	json_object_object_add(obj, markdown ? "markdown" : "text", md);
	free(text);
	free(title);
	if (tc->secret) {
		char ts[32], sign[128], *tosign = NULL, *esc = NULL;
		snprintf(ts, sizeof(ts), "%lld", (long long)time_now_ms());
		if (asprintf(&tosign, "%s\n%s", ts, tc->secret) < 0)
			tosign = NULL;
		if (!tosign || hmac_sha256_b64(tc->secret, strlen(tc->secret), tosign, strlen(tosign),
					       sign, sizeof(sign)) < 0 ||
		    !(esc = curl_easy_escape(NULL, sign, 0)) ||
		    asprintf(&msg->url, "%s%ctimestamp=%s&sign=%s", tc->url,
			     strchr(tc->url, '?') ? '&' : '?', ts, esc) < 0) {
			msg->url = NULL;
			free(tosign);
			curl_free(esc);
			json_object_put(obj);
			return herr_set(err, HERR_NOMEM, "cannot sign the request");
		}
		free(tosign);
		curl_free(esc);
	}
	return finish(tc->url, obj, msg, err);
}

/*
 * Feishu/Lark: timestamp (seconds) and sign in the body; the key is
 * "timestamp\nsecret" and the signed message is empty.
 */
static int build_feishu(const struct target_conf *tc, struct json_object **bodies, size_t n,
			struct message *msg, struct herr *err)
{
	char *text = render(tc, text_default, bodies, n, "\n\n");
	struct json_object *obj = json_object_new_object(), *content = json_object_new_object();

	if (tc->secret) {
		char ts[32], sign[128], *key = NULL;
		snprintf(ts, sizeof(ts), "%lld", (long long)(time_now_ms() / 1000));
		if (asprintf(&key, "%s\n%s", ts, tc->secret) < 0 ||
		    hmac_sha256_b64(key, strlen(key), "", 0, sign, sizeof(sign)) < 0) {
			free(key);
			free(text);
			json_object_put(obj);
			json_object_put(content);
			return herr_set(err, HERR_NOMEM, "cannot sign the request");
		}
		free(key);
		json_object_object_add(obj, "timestamp", jstr(ts));
		json_object_object_add(obj, "sign", jstr(sign));
	}
	json_object_object_add(content, "text", jstr(text));
	json_object_object_add(obj, "msg_type", jstr("text"));
	json_object_object_add(obj, "content", content);
	free(text);
	return finish(tc->url, obj, msg, err);
}

static void am_label(struct json_object *labels, const char *key, struct json_object *v)
{
	if (v && !json_object_is_type(v, json_type_null))
		json_object_object_add(labels, key, jstr(json_object_get_string(v)));
}

/*
 * Alertmanager v2: a list of alerts. A resolved alert carries endsAt so it
 * ends there too; a firing one leaves endsAt to Alertmanager (resolve_timeout).
 */
static int build_alertmanager(const struct target_conf *tc, struct json_object **bodies, size_t n,
			      struct message *msg, struct herr *err)
{
	struct json_object *list = json_object_new_array();
	size_t ulen = strlen(tc->url);
	static const char api[] = "/api/v2/alerts";

	for (size_t i = 0; i < n; i++) {
		struct json_object *b = bodies[i], *a = json_object_new_object();
		struct json_object *labels = json_object_new_object(), *ann = json_object_new_object();
		struct json_object *user = json_at(b, "alert.labels");
		if (user && json_object_is_type(user, json_type_object)) {
			json_object_object_foreach(user, k, v)
				am_label(labels, k, v);
		}
		am_label(labels, "alertname", json_at(b, "alert.rule"));
		am_label(labels, "customer", json_at(b, "alert.customer"));
		am_label(labels, "severity", json_at(b, "alert.severity"));
		am_label(labels, "owner", json_at(b, "customer.owner"));
		am_label(labels, "tier", json_at(b, "customer.tier"));
		json_object_object_add(ann, "summary", jstr(json_object_get_string(json_at(b, "alert.summary"))));
		am_label(ann, "customer_name", json_at(b, "customer.name"));
		json_object_object_add(a, "labels", labels);
		json_object_object_add(a, "annotations", ann);
		json_object_object_add(a, "startsAt", jstr(json_object_get_string(json_at(b, "alert.since"))));
		const char *kind = json_object_get_string(json_at(b, "kind"));
		if (kind && strcmp(kind, "resolved") == 0)
			json_object_object_add(a, "endsAt", jstr(json_object_get_string(json_at(b, "ts"))));
		json_object_array_add(list, a);
	}
	if (ulen >= sizeof(api) - 1 && strcmp(tc->url + ulen - (sizeof(api) - 1), api) == 0)
		msg->url = strdup(tc->url);
	else if (asprintf(&msg->url, "%.*s%s", (int)(ulen && tc->url[ulen - 1] == '/' ? ulen - 1 : ulen),
			  tc->url, api) < 0)
		msg->url = NULL;
	if (!msg->url) {
		json_object_put(list);
		return herr_set(err, HERR_NOMEM, "out of memory");
	}
	return finish(tc->url, list, msg, err);
}

static const char *const only_text[] = { "text", NULL };
static const char *const only_json[] = { "json", NULL };
static const char *const teams_formats[] = { "messagecard", "adaptive", NULL };
static const char *const robot_formats[] = { "markdown", "text", NULL };

static const struct target_type types[] = {
	/* the Chinese services speak Chinese unless a target says `locale: en` */
	{ "slack", LOCALE_EN, 0, 0, only_text, build_slack },
	{ "teams", LOCALE_EN, 0, 0, teams_formats, build_teams },
	{ "dingtalk", LOCALE_ZH, 1, 1, robot_formats, build_dingtalk },
	{ "feishu", LOCALE_ZH, 1, 1, only_text, build_feishu },
	{ "wecom", LOCALE_ZH, 0, 1, robot_formats, build_wecom },
	{ "webhook", LOCALE_EN, 0, 0, only_json, build_webhook },
	{ "alertmanager", LOCALE_EN, 0, 0, only_json, build_alertmanager },
};

int target_format_find(const struct target_type *type, const char *format)
{
	for (int i = 0; type->formats[i]; i++)
		if (strcmp(type->formats[i], format) == 0)
			return i;
	return -1;
}

const struct target_type *target_type_find(const char *name)
{
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(types[i].name, name) == 0)
			return &types[i];
	return NULL;
}

const char *target_type_names(void)
{
	return "slack, teams, dingtalk, feishu, wecom, webhook, alertmanager";
}

static int in_list(const struct strlist *l, struct json_object *v)
{
	const char *s = json_object_get_string(v);

	if (l->n == 0)
		return 1;
	if (!v || !s)
		return 0;
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], s) == 0)
			return 1;
	return 0;
}

int target_matches(const struct target_conf *tc, struct json_object *body)
{
	static const char *const kinds[] = { "firing", "repeat", "resolved" };
	const char *kind = json_object_get_string(json_at(body, "kind"));
	unsigned bit = 0;

	for (int i = 0; i < 3; i++)
		if (kind && strcmp(kind, kinds[i]) == 0)
			bit = 1u << i;
	if (!(tc->kinds & bit))
		return 0;
	if (!in_list(&tc->severity, json_at(body, "alert.severity")) ||
	    !in_list(&tc->rule, json_at(body, "alert.rule")) ||
	    !in_list(&tc->owner, json_at(body, "customer.owner")) ||
	    !in_list(&tc->customer, json_at(body, "alert.customer")))
		return 0;
	struct json_object *labels = json_at(body, "alert.labels");
	for (size_t i = 0; i < tc->label_keys.n; i++) {
		struct json_object *v = NULL;
		const char *s;
		if (!labels || !json_object_object_get_ex(labels, tc->label_keys.v[i], &v) ||
		    !(s = json_object_get_string(v)) || strcmp(s, tc->label_values.v[i]) != 0)
			return 0;
	}
	return 1;
}
