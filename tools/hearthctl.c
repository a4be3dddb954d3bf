/*
 * hearthctl (PROTOCOL.md §8.3): every control command of PROTOCOL.md §5 as a subcommand.
 *
 * A subcommand is a row of one table: the command it sends, its positional
 * arguments and options with the JSON argument and type each becomes, the
 * printer of its answer, and its help. Parsing, usage messages, `help` and
 * the request itself are all read from that row, so a new control command is
 * one new row. Options the table does not know still go through as
 * `--key value`, typed by their look, so a daemon newer than this hearthctl
 * is reachable too.
 *
 * Exit codes: 0 ok, 1 the daemon said no, 2 usage, 3 cannot reach the daemon.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "hearth/curve.h"
#include "hearth/ctlclient.h"
#include "hearth/units.h"

/* How an argument's text becomes its JSON value. */
enum arg_kind {
	ARG_STR,
	ARG_INT,
	ARG_AUTO,       /* integer, true/false, else text */
	ARG_FLAG,       /* no value: true */
	ARG_LIST,       /* a,b,c */
	ARG_TIME,       /* RFC 3339 text, or unix ms */
	ARG_DURATION,   /* "90s", "1d12h" as written; bare digits are ms */
	ARG_JSON,       /* any JSON value */
};

#define ARG_REQUIRED 0x1
#define ARG_ONE_OF   0x2    /* exactly one of the options so marked */

struct arg {
	const char *name;       /* --name, or what a positional is called in usage */
	const char *key;        /* its argument in the request */
	enum arg_kind kind;
	const char *meta;       /* the value in usage: --limit N */
	unsigned flags;
};

struct subcommand {
	const char *name;
	const char *cmd;        /* the control command; NULL when run here */
	const struct arg *pos;  /* positionals in order, each required */
	const struct arg *opts;
	ctl_printer print;
	const char *list;       /* a paged list: --all follows `cursor` to the end */
	const char *help;
	/* run here: positionals, and the options of `opts` as a JSON object */
	int (*run)(const struct ctl_opts *o, int argc, char **argv, struct json_object *opts);
};

/* Option keys PROTOCOL.md §5 documents as lists, for options the table does not name. */
static const char *const list_keys[] = { "types" };

#define OPT(name, kind, meta) { name, name, kind, meta, 0 }
#define OPT_F(name, kind, meta, flags) { name, name, kind, meta, flags }

static const struct arg no_args[] = { { 0 } };
static const struct arg pos_id[] = { { "ID", "id", ARG_STR, NULL, 0 }, { 0 } };
static const struct arg pos_silence[] = { { "ID", "id", ARG_AUTO, NULL, 0 }, { 0 } };
static const struct arg pos_rule_customer[] = {
	{ "RULE", "rule", ARG_STR, NULL, 0 }, { "CUSTOMER", "customer", ARG_STR, NULL, 0 }, { 0 },
};
static const struct arg pos_expr[] = { { "EXPR", "expr", ARG_STR, NULL, 0 }, { 0 } };
static const struct arg pos_at[] = { { "AT", "at", ARG_TIME, NULL, 0 }, { 0 } };
static const struct arg pos_by[] = { { "BY", "by", ARG_DURATION, NULL, 0 }, { 0 } };
static const struct arg pos_files[] = { { "FILE...", NULL, ARG_STR, NULL, 0 }, { 0 } };
static const struct arg pos_topic[] = { { "[COMMAND]", NULL, ARG_STR, NULL, 0 }, { 0 } };

static const struct arg opts_ingest[] = {
	OPT_F("events", ARG_JSON, "'[EVENT,...]'", ARG_REQUIRED), { 0 },
};
static const struct arg opts_customers[] = {
	OPT("where", ARG_STR, "EXPR"), OPT("order", ARG_STR, "EXPR"), OPT("desc", ARG_FLAG, NULL),
	OPT("limit", ARG_INT, "N"), OPT("cursor", ARG_STR, "C"), { 0 },
};
static const struct arg opts_timeline[] = {
	OPT("since", ARG_TIME, "T"), OPT("until", ARG_TIME, "T"), OPT("types", ARG_LIST, "a,b"),
	OPT("desc", ARG_FLAG, NULL), OPT("limit", ARG_INT, "N"), OPT("cursor", ARG_STR, "C"), { 0 },
};
static const struct arg opts_alerts[] = {
	OPT("state", ARG_STR, "firing|pending|resolved|all"), OPT("rule", ARG_STR, "R"),
	OPT("customer", ARG_STR, "C"), OPT("owner", ARG_STR, "O"), OPT("limit", ARG_INT, "N"), { 0 },
};
static const struct arg opts_at[] = { OPT("at", ARG_TIME, "T"), { 0 } };
static const struct arg opts_ack[] = {
	OPT("by", ARG_STR, "WHO"), OPT("comment", ARG_STR, "TEXT"), { 0 },
};
static const struct arg opts_silence[] = {
	OPT("rule", ARG_STR, "R"), OPT("customer", ARG_STR, "C"), OPT("owner", ARG_STR, "O"),
	OPT_F("for", ARG_DURATION, "D", ARG_ONE_OF), OPT_F("until", ARG_TIME, "T", ARG_ONE_OF),
	OPT("by", ARG_STR, "WHO"), OPT("comment", ARG_STR, "TEXT"), { 0 },
};
static const struct arg opts_eval[] = {
	OPT_F("customer", ARG_STR, "ID", ARG_REQUIRED), OPT("at", ARG_TIME, "T"), { 0 },
};
static const struct arg opts_top[] = { OPT("n", ARG_INT, "N"), OPT("where", ARG_STR, "EXPR"), { 0 } };
static const struct arg opts_replay[] = {
	OPT_F("after", ARG_INT, "SEQ", ARG_REQUIRED), OPT("limit", ARG_INT, "N"), { 0 },
};

static int run_import(const struct ctl_opts *o, int argc, char **argv, struct json_object *opts);
static int run_help(const struct ctl_opts *o, int argc, char **argv, struct json_object *opts);
static int run_watch(const struct ctl_opts *o, int argc, char **argv, struct json_object *opts);
static int run_backup(const struct ctl_opts *o, int argc, char **argv, struct json_object *opts);
static int run_keygen(const struct ctl_opts *o, int argc, char **argv, struct json_object *opts);
static const struct arg pos_file[] = { { "FILE", NULL, ARG_STR, NULL, 0 }, { 0 } };

static const struct arg pos_rule_opt[] = { { "[RULE]", NULL, ARG_STR, NULL, 0 }, { 0 } };
static const struct arg opts_backtest[] = {
	OPT("when", ARG_STR, "EXPR"), OPT("for", ARG_DURATION, "D"), OPT("repeat", ARG_DURATION, "D"),
	OPT("from", ARG_TIME, "T"), OPT("to", ARG_TIME, "T"), OPT("where", ARG_STR, "EXPR"),
	OPT("compare", ARG_STR, "RULE"), OPT("detail", ARG_FLAG, NULL), OPT("svg", ARG_STR, "FILE"), { 0 },
};
static int run_backtest(const struct ctl_opts *o, int argc, char **argv, struct json_object *opts);
static const struct arg opts_reload[] = { OPT("dry-run", ARG_FLAG, NULL), { 0 } };
static const struct arg opts_import[] = { OPT("live", ARG_FLAG, NULL), { 0 } };

static const struct arg opts_watch[] = {
	OPT("topic", ARG_STR, "PREFIX"), OPT("endpoint", ARG_STR, "E"), OPT("after", ARG_INT, "SEQ"),
	OPT("count", ARG_INT, "N"), { 0 },
};

static const struct subcommand subcommands[] = {
	{ "ping", "ping", no_args, no_args, print_ping, NULL, "is the daemon there", NULL },
	{ "status", "status", no_args, no_args, print_status, NULL,
	  "version, uptime, counts, store size", NULL },
	{ "metrics", "metrics", no_args, no_args, print_metrics, NULL,
	  "Prometheus text exposition", NULL },
	{ "ingest", "ingest", no_args, opts_ingest, print_ingest, NULL,
	  "store the events of a JSON array (admin)", NULL },
	{ "import", NULL, pos_files, opts_import, NULL, NULL,
	  "load history from JSON lines, JSON array or CSV files (- is stdin), evaluated once at its end;"
	  " --live evaluates batch by batch (admin)", run_import },
	{ "backup", NULL, pos_file, no_args, NULL, NULL,
	  "a consistent, compacted copy of the live store into FILE (restore: hearthd --restore FILE)",
	  run_backup },
	{ "keygen", NULL, pos_file, no_args, NULL, NULL,
	  "make a CURVE key pair: FILE.key (secret, 0600) and FILE.pub (for authorized_keys)", run_keygen },
	{ "watch", NULL, no_args, opts_watch, NULL, NULL,
	  "print alerts live (--topic alert.critical), filling any gap with replay; --count N stops", run_watch },
	{ "customer", "customer", pos_id, no_args, print_customer, NULL,
	  "one customer: profile, last event of each type, open cases, alerts", NULL },
	{ "customers", "customers", no_args, opts_customers, print_customers, "customers",
	  "list customers, filtered and ordered by expressions (PROTOCOL.md §7)", NULL },
	{ "timeline", "timeline", pos_id, opts_timeline, print_timeline, "events",
	  "a customer's events in time order", NULL },
	{ "forget", "forget", pos_id, no_args, print_forget, NULL,
	  "remove every trace of a customer (admin)", NULL },
	{ "alerts", "alerts", no_args, opts_alerts, print_alerts, NULL,
	  "alerts, firing ones unless --state says otherwise", NULL },
	{ "ack", "ack", pos_rule_customer, opts_ack, print_done, NULL,
	  "stop an alert's repeats until it resolves (admin)", NULL },
	{ "silence.add", "silence.add", no_args, opts_silence, print_silence_add, NULL,
	  "mute matching alerts --for a while or --until a time (admin)", NULL },
	{ "silence.list", "silence.list", no_args, no_args, print_silences, NULL,
	  "the silences in force", NULL },
	{ "silence.remove", "silence.remove", pos_silence, no_args, print_done, NULL,
	  "end a silence (admin)", NULL },
	{ "rules", "rules", no_args, no_args, print_rules, NULL,
	  "every rule with its firing and pending counts and last error", NULL },
	{ "eval", "eval", pos_expr, opts_eval, print_value, NULL,
	  "an expression's value for one customer, now or --at a past time", NULL },
	{ "explain", "explain", pos_rule_customer, opts_at, print_explain, NULL,
	  "a rule's value for one customer, term by term", NULL },
	{ "backtest", NULL, pos_rule_opt, opts_backtest, NULL, NULL,
	  "what RULE (or --when EXPR) would have done --from --to (default: the last 90 days);"
	  " --compare RULE, --detail, --svg FILE for a chart", run_backtest },
	{ "top", "top", no_args, opts_top, print_top, NULL,
	  "customers ranked by the configured priority", NULL },
	{ "replay", "replay", no_args, opts_replay, print_replay, NULL,
	  "notifications after a seq, from the durable outbox", NULL },
	{ "reload.dry_run", "reload.dry_run", no_args, no_args, print_dry_run, NULL,
	  "what reload would fire, resolve or change now, without applying it (also reload --dry-run; admin)",
	  NULL },
	{ "reload", "reload", no_args, opts_reload, print_done, NULL,
	  "re-read the configuration (admin)", NULL },
	{ "clock.set", "clock.set", pos_at, no_args, print_done, NULL,
	  "set a --test-clock daemon's clock and run a tick (admin)", NULL },
	{ "clock.advance", "clock.advance", pos_by, no_args, print_done, NULL,
	  "move a --test-clock daemon's clock on and run a tick (admin)", NULL },
	{ "commands", "help", no_args, no_args, print_commands, NULL,
	  "the commands the daemon itself knows", NULL },
	{ "help", NULL, pos_topic, no_args, NULL, NULL, "this list, or one command's usage", run_help },
};

#define NSUBCOMMANDS (sizeof(subcommands) / sizeof(subcommands[0]))

/* ---- argument values --------------------------------------------------------------- */

static int parse_int(const char *s, int64_t *out)
{
	char *end;

	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (!*s || *end || errno)
		return -1;
	*out = v;
	return 0;
}

static struct json_object *str_value(const char *text)
{
	return json_object_new_string(text);
}

static struct json_object *int_value(const char *text)
{
	int64_t n;
	return parse_int(text, &n) == 0 ? json_object_new_int64(n) : NULL;
}

static struct json_object *bool_value(const char *text)
{
	if (strcmp(text, "true") && strcmp(text, "false"))
		return NULL;
	return json_object_new_boolean(text[0] == 't');
}

static struct json_object *auto_value(const char *text)
{
	struct json_object *v = int_value(text);
	if (!v)
		v = bool_value(text);
	return v ? v : str_value(text);
}

static struct json_object *list_value(const char *text)
{
	struct json_object *list = json_object_new_array();
	const char *p = text;

	while (list && *p) {
		size_t n = strcspn(p, ",");
		if (n > 0)
			json_object_array_add(list, json_object_new_string_len(p, (int)n));
		p += n + (p[n] == ',');
	}
	if (list && json_object_array_length(list) == 0) {
		json_object_put(list);
		return NULL;
	}
	return list;
}

static struct json_object *time_value(const char *text)
{
	int64_t ms;
	struct json_object *v = int_value(text);

	if (v || time_parse_rfc3339(text, strlen(text), &ms) < 0)
		return v;
	return str_value(text);
}

/* Sent as PROTOCOL.md §1.2 text, which is what the daemon parses; bare digits are ms. */
static struct json_object *duration_value(const char *text)
{
	char buf[32];
	int64_t ms;

	if (parse_int(text, &ms) == 0 && ms >= 0) {
		snprintf(buf, sizeof(buf), "%lldms", (long long)ms);
		return str_value(buf);
	}
	return duration_parse(text, strlen(text), &ms) == 0 ? str_value(text) : NULL;
}

static struct json_object *json_value(const char *text)
{
	return json_tokener_parse(text);
}

/* Per kind: the value's name in usage, how its text becomes JSON, and the complaint. */
static const struct arg_kind_info {
	const char *meta;
	struct json_object *(*value)(const char *text);
	const char *why;
} kinds[] = {
	[ARG_STR] = { "TEXT", str_value, NULL },
	[ARG_INT] = { "N", int_value, "'%s' is not an integer" },
	[ARG_AUTO] = { "VALUE", auto_value, NULL },
	[ARG_FLAG] = { NULL, bool_value, "'%s' is not true or false" },
	[ARG_LIST] = { "a,b", list_value, "'%s' is not a comma-separated list" },
	[ARG_TIME] = { "T", time_value, "'%s' is not an RFC 3339 time or unix milliseconds" },
	[ARG_DURATION] = { "D", duration_value,
			   "'%s' is not a duration (500ms, 90s, 15m, 12h, 30d, 2w, 1d12h)" },
	[ARG_JSON] = { "JSON", json_value, "'%s' is not JSON" },
};

/* The JSON value of an argument's text; NULL with why (for a usage error) filled. */
static struct json_object *arg_value(enum arg_kind kind, const char *text, char *why, size_t size)
{
	struct json_object *v = kinds[kind].value(text);

	if (!v)
		snprintf(why, size, kinds[kind].why ? kinds[kind].why : "bad value '%s'", text);
	return v;
}

/* ---- usage ------------------------------------------------------------------------- */


static void print_synopsis(FILE *out, const struct subcommand *sub)
{
	int one_of = 0;

	fputs(sub->name, out);
	for (const struct arg *a = sub->pos; a->name; a++)
		fprintf(out, " %s", a->name);
	for (const struct arg *a = sub->opts; a->name; a++) {
		const char *meta = a->meta ? a->meta : kinds[a->kind].meta;
		const char *open = a->flags & ARG_REQUIRED ? "" : "[";
		const char *close = a->flags & ARG_REQUIRED ? "" : "]";
		if (a->flags & ARG_ONE_OF) {
			open = one_of++ ? "| " : "(";
			close = (a + 1)->name && ((a + 1)->flags & ARG_ONE_OF) ? "" : ")";
		}
		fprintf(out, " %s--%s%s%s%s", open, a->name, meta ? " " : "", meta ? meta : "", close);
	}
	if (sub->list)
		fputs(" [--all]", out);
}

static void print_usage(FILE *out)
{
	fputs("usage: hearthctl [-s SOCKET | --nats URL] [--json] [--tz ZONE] [-h] COMMAND [ARGS]\n\n"
	      "Talks to hearthd over its control socket (default " CTL_DEFAULT_SOCKET
	      ", or $HEARTH_CONTROL).\n--json prints the daemon's answer as it came. "
	      "--tz shows times in ZONE (Asia/Shanghai;\ndefault $TZ, else the system's). "
	      "Options a command does not list go through\nas --KEY VALUE. "
	      "Exit codes: 0 ok, 1 the daemon said no, 2 usage, 3 cannot reach the daemon.\n\n"
	      "Cluster mode (PROTOCOL.md §9): --nats URL (or $HEARTH_NATS) asks the shards over NATS\n"
	      "instead: a command naming a customer goes to the shard owning it, the others to every\n"
	      "shard, answers merged. Credentials from $HEARTH_NATS_USER and $HEARTH_NATS_PASSWORD, or\n"
	      "$HEARTH_NATS_CREDS. --partitions N (16) and --nats-prefix P (hearth) as configured;\n"
	      "--timeout D bounds how long `import --nats` waits for PubAcks (2m).\n\n"
	      "commands:\n", out);
	for (size_t i = 0; i < NSUBCOMMANDS; i++) {
		fputs("  ", out);
		print_synopsis(out, &subcommands[i]);
		fprintf(out, "\n      %s\n", subcommands[i].help);
	}
}

/* Says what is wrong and how the command is used; returns the usage exit code. */
static int usage_error(const struct subcommand *sub, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int usage_error(const struct subcommand *sub, const char *fmt, ...)
{
	va_list ap;

	fputs("hearthctl: ", stderr);
	if (sub)
		fprintf(stderr, "%s: ", sub->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (sub) {
		fputs("usage: hearthctl ", stderr);
		print_synopsis(stderr, sub);
		fputc('\n', stderr);
	} else {
		fputs("try 'hearthctl help'\n", stderr);
	}
	return CTL_EXIT_USAGE;
}

static const struct subcommand *find_subcommand(const char *name)
{
	for (size_t i = 0; i < NSUBCOMMANDS; i++)
		if (strcmp(subcommands[i].name, name) == 0)
			return &subcommands[i];
	return NULL;
}

static int run_help(const struct ctl_opts *o, int argc, char **argv, struct json_object *opts)
{
	const struct subcommand *sub;

	(void)o, (void)opts;
	if (argc == 0) {
		print_usage(stdout);
		return CTL_EXIT_OK;
	}
	if (!(sub = find_subcommand(argv[0])))
		return usage_error(NULL, "unknown command '%s'", argv[0]);
	fputs("usage: hearthctl ", stdout);
	print_synopsis(stdout, sub);
	printf("\n  %s\n", sub->help);
	return CTL_EXIT_OK;
}

/* ---- the command line -------------------------------------------------------------- */

struct invocation {
	const struct subcommand *sub;
	struct json_object *req;
	char **pos;             /* positionals, in argv order */
	int npos;
	int all;
	int help;
};

static const struct arg *find_arg(const struct arg *args, const char *name, size_t len)
{
	for (const struct arg *a = args; a->name; a++)
		if (strlen(a->name) == len && memcmp(a->name, name, len) == 0)
			return a;
	return NULL;
}

static enum arg_kind generic_kind(const char *name)
{
	for (size_t i = 0; i < sizeof(list_keys) / sizeof(list_keys[0]); i++)
		if (strcmp(list_keys[i], name) == 0)
			return ARG_LIST;
	return ARG_AUTO;
}

/* One --name[=value] option at argv[*i]; may take argv[*i + 1] as its value. */
static int take_option(struct ctl_opts *o, struct invocation *inv, int argc, char **argv, int *i)
{
	const char *name = argv[*i] + 2, *eq = strchr(name, '='), *value = eq ? eq + 1 : NULL;
	size_t len = eq ? (size_t)(eq - name) : strlen(name);
	const struct arg *a = find_arg(inv->sub->opts, name, len);
	char key[64], why[512];
	struct json_object *v;

	if (len >= sizeof(key))
		return usage_error(inv->sub, "option '%s' is too long", argv[*i]);
	memcpy(key, name, len);
	key[len] = '\0';
	if (!value && !strcmp(key, "json")) {
		o->json = 1;
		return 0;
	}
	if (!value && !strcmp(key, "help")) {
		inv->help = 1;
		return 0;
	}
	if (!value && !strcmp(key, "all") && inv->sub->list) {
		inv->all = 1;
		return 0;
	}
	if (!value && !(a && a->kind == ARG_FLAG)) {
		if (*i + 1 >= argc)
			return usage_error(inv->sub, "--%s needs a value", key);
		value = argv[++*i];
	}
	if (!strcmp(key, "socket")) {
		o->socket = value;
		return 0;
	}
	if (inv->sub->run && !a)
		return usage_error(inv->sub, "unknown option '--%s'", key);
	v = value ? arg_value(a ? a->kind : generic_kind(key), value, why, sizeof(why))
		  : json_object_new_boolean(1);
	if (!v)
		return usage_error(inv->sub, "--%s: %s", key, why);
	json_object_object_add(inv->req, key, v);
	return 0;
}

/* Everything after the subcommand's name: options anywhere, "--" ends them. */
static int parse_args(struct ctl_opts *o, struct invocation *inv, int argc, char **argv)
{
	int only_pos = 0;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		int rc = 0;
		if (only_pos || a[0] != '-' || !strcmp(a, "-"))
			inv->pos[inv->npos++] = argv[i];
		else if (!strcmp(a, "--"))
			only_pos = 1;
		else if (!strcmp(a, "-h"))
			inv->help = 1;
		else if (!strcmp(a, "-s") && i + 1 < argc)
			o->socket = argv[++i];
		else if (!strcmp(a, "-s"))
			return usage_error(inv->sub, "%s", "-s needs a socket path");
		else if (a[1] == '-')
			rc = take_option(o, inv, argc, argv, &i);
		else
			inv->pos[inv->npos++] = argv[i];   /* "-1h" and the like are values */
		if (rc)
			return rc;
	}
	return 0;
}

/* Positionals and required options against the subcommand's row. */
static int check_args(struct invocation *inv)
{
	const struct subcommand *sub = inv->sub;
	char why[512];
	int n = 0, one_of = 0, given = 0;

	for (const struct arg *a = sub->pos; a->name; a++, n++) {
		if (n >= inv->npos)
			return usage_error(sub, "%s is missing", a->name);
		struct json_object *v = arg_value(a->kind, inv->pos[n], why, sizeof(why));
		if (!v)
			return usage_error(sub, "%s: %s", a->name, why);
		json_object_object_add(inv->req, a->key, v);
	}
	if (inv->npos > n)
		return usage_error(sub, "unexpected argument '%s'", inv->pos[n]);
	for (const struct arg *a = sub->opts; a->name; a++) {
		int has = json_object_object_get_ex(inv->req, a->key, NULL);
		if ((a->flags & ARG_REQUIRED) && !has)
			return usage_error(sub, "--%s is required", a->name);
		one_of |= a->flags & ARG_ONE_OF;
		given += (a->flags & ARG_ONE_OF) && has;
	}
	if (one_of && given != 1)
		return usage_error(sub, "%s", given ? "give only one of the options in ( | )"
						   : "one of the options in ( | ) is required");
	return 0;
}

/* ---- talking to the daemon --------------------------------------------------------- */

/* Sends req; *raw is the answer line as received (the caller frees it). */
static struct json_object *call(struct ctl_client *cc, struct json_object *req, char **raw)
{
	struct json_object *ans;
	struct herr err;
	const char *line;
	size_t len;

	*raw = NULL;
	if (ctl_send_json(cc, req, &err) < 0 || ctl_recv(cc, &line, &len, -1, &err) != 0) {
		ctl_warn("%s", err.msg);
		return NULL;
	}
	ans = json_tokener_parse(line);
	if (!ans || !json_object_is_type(ans, json_type_object)) {
		json_object_put(ans);
		ctl_warn("hearthd sent an answer that is not a JSON object");
		return NULL;
	}
	if (!(*raw = strdup(line))) {
		json_object_put(ans);
		ctl_warn("out of memory");
		return NULL;
	}
	return ans;
}

static int said_yes(struct json_object *ans)
{
	struct json_object *ok;
	return json_object_object_get_ex(ans, "ok", &ok) && json_object_get_boolean(ok);
}

static void print_refusal(struct json_object *ans)
{
	ctl_warn("%s: %s", json_object_get_string(json_path(ans, "error.code")),
		 json_object_get_string(json_path(ans, "error.message")));
}

/* Asks for the next pages until no cursor is left, adding them to ans's list. */
static int follow_cursor(struct ctl_client *cc, const struct invocation *inv,
			 struct json_object *ans, char **raw, int *pages)
{
	struct json_object *cursor, *list = json_path(ans, inv->sub->list);

	while ((cursor = json_path(ans, "cursor")) && list) {
		json_object_object_add(inv->req, "cursor", json_object_get(cursor));
		free(*raw);
		struct json_object *next = call(cc, inv->req, raw);
		if (!next)
			return CTL_EXIT_UNREACHABLE;
		if (!said_yes(next)) {
			print_refusal(next);
			json_object_put(next);
			return CTL_EXIT_NO;
		}
		struct json_object *more = json_path(next, inv->sub->list);
		for (size_t i = 0; more && i < json_object_array_length(more); i++)
			json_object_array_add(list, json_object_get(json_object_array_get_idx(more, i)));
		json_object_object_del(ans, "cursor");
		if ((cursor = json_path(next, "cursor")))
			json_object_object_add(ans, "cursor", json_object_get(cursor));
		json_object_put(next);
		(*pages)++;
	}
	return CTL_EXIT_OK;
}

static void print_answer(const struct ctl_opts *o, const struct invocation *inv,
			 struct json_object *ans, const char *raw, int pages)
{
	struct json_object *cursor = json_path(ans, "cursor");

	if (o->json) {
		/* several pages have no one raw answer: their lists are joined into one */
		puts(pages == 1 ? raw : json_object_to_json_string_ext(ans, JSON_C_TO_STRING_PLAIN |
									 JSON_C_TO_STRING_NOSLASHESCAPE));
		return;
	}
	if (json_path(ans, "now") && json_object_is_type(json_path(ans, "now"), json_type_string)) {
		int64_t now;
		const char *s = json_object_get_string(json_path(ans, "now"));
		if (time_parse_rfc3339(s, strlen(s), &now) == 0)
			human_set_now(now);     /* relative times as the daemon's clock sees them */
	}
	inv->sub->print(ans);
	if (cursor && inv->sub->list)
		ctl_warn("more %s follow: --cursor '%s' continues, --all lists them all",
			 inv->sub->list, json_object_get_string(cursor));
}

/* Rejected events in an otherwise good answer (ingest) count as the daemon saying no. */
static int rejected_some(struct json_object *ans)
{
	struct json_object *r = json_path(ans, "rejected");
	return r && json_object_is_type(r, json_type_array) && json_object_array_length(r) > 0;
}

static int run_remote(const struct ctl_opts *o, const struct invocation *inv)
{
	struct json_object *ans = NULL;
	struct ctl_client *cc;
	struct herr err;
	char *raw = NULL;
	int rc = CTL_EXIT_UNREACHABLE, pages = 1;

	if (o->nats) {
		cc = NULL;
		if (!(ans = nats_call(o, inv->req, &raw)))
			goto out;
	} else if (!(cc = ctl_connect(o->socket, &err))) {
		ctl_warn("%s", err.msg);
		return CTL_EXIT_UNREACHABLE;
	} else if (!(ans = call(cc, inv->req, &raw))) {
		goto out;
	}
	if (!said_yes(ans)) {
		if (o->json)
			puts(raw);
		print_refusal(ans);
		rc = CTL_EXIT_NO;
		goto out;
	}
	/* over NATS, lists are merged from every shard's first page: cursors are per shard */
	if (inv->all && cc && (rc = follow_cursor(cc, inv, ans, &raw, &pages)) != CTL_EXIT_OK)
		goto out;
	print_answer(o, inv, ans, raw, pages);
	rc = rejected_some(ans) ? CTL_EXIT_NO : CTL_EXIT_OK;
out:
	free(raw);
	json_object_put(ans);
	if (cc)
		ctl_close(cc);
	return rc;
}

static long opt_long(struct json_object *opts, const char *key, long def)
{
	struct json_object *v;
	return json_object_object_get_ex(opts, key, &v) ? (long)json_object_get_int64(v) : def;
}

static const char *opt_str(struct json_object *opts, const char *key)
{
	struct json_object *v;
	return json_object_object_get_ex(opts, key, &v) ? json_object_get_string(v) : NULL;
}

static int run_watch(const struct ctl_opts *o, int argc, char **argv, struct json_object *opts)
{
	(void)argv;
	if (argc > 0)
		return usage_error(find_subcommand("watch"), "%s", "watch takes no positionals");
	if (o->nats)
		return nats_watch_run(o, opt_long(opts, "after", -1), opt_long(opts, "count", -1));
	return watch_run(o, opt_str(opts, "endpoint"), opt_str(opts, "topic"),
			 opt_long(opts, "after", -1), opt_long(opts, "count", -1));
}

static int run_keygen(const struct ctl_opts *o, int argc, char **argv, struct json_object *opts)
{
	char pub[CURVE_KEY_Z85];
	struct herr err;

	(void)opts;
	if (argc != 1)
		return usage_error(find_subcommand("keygen"), "%s", "keygen takes one FILE (no extension)");
	if (curve_keygen(argv[0], pub, &err) < 0) {
		ctl_warn("%s", err.msg);
		return CTL_EXIT_NO;
	}
	if (o->json)
		printf("{\"public\":\"%s\",\"key\":\"%s.key\",\"pub\":\"%s.pub\"}\n", pub, argv[0], argv[0]);
	else
		printf("wrote %s.key (keep it secret) and %s.pub; public key %s\n", argv[0], argv[0], pub);
	return CTL_EXIT_OK;
}

static int run_backup(const struct ctl_opts *o, int argc, char **argv, struct json_object *opts)
{
	(void)opts;
	if (argc != 1)
		return usage_error(find_subcommand("backup"), "%s", "backup takes one FILE");
	return backup_run(o, argv[0]);
}

static int run_backtest(const struct ctl_opts *o, int argc, char **argv, struct json_object *opts)
{
	int has_when = json_object_object_get_ex(opts, "when", NULL);

	if (argc > 1 || (argc == 1) == has_when)
		return usage_error(find_subcommand("backtest"), "%s", "give a RULE or --when EXPR");
	return backtest_run(o, argc ? argv[0] : NULL, opts);
}

static int run_import(const struct ctl_opts *o, int argc, char **argv, struct json_object *opts)
{
	struct json_object *live;

	if (argc == 0)
		return usage_error(find_subcommand("import"), "%s", "FILE... is missing");
	if (o->nats)
		return nats_import_run(o, argc, argv,
				       json_object_object_get_ex(opts, "live", &live) && json_object_get_boolean(live));
	return import_run(o, argc, argv,
			  json_object_object_get_ex(opts, "live", &live) && json_object_get_boolean(live));
}

/* ---- main -------------------------------------------------------------------------- */

/*
 * Options before the subcommand. Returns the index of the subcommand's name,
 * or -1 with *exit_code set when there is nothing more to do.
 */
static int global_options(struct ctl_opts *o, int argc, char **argv, int *exit_code)
{
	int i = 1;

	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		if ((!strcmp(a, "-s") || !strcmp(a, "--socket")) && i + 1 < argc) {
			o->socket = argv[++i];
		} else if (!strncmp(a, "--socket=", 9)) {
			o->socket = a + 9;
		} else if (!strcmp(a, "--json")) {
			o->json = 1;
		} else if (!strcmp(a, "--nats") && i + 1 < argc) {
			o->nats = argv[++i];
		} else if (!strncmp(a, "--nats=", 7)) {
			o->nats = a + 7;
		} else if (!strcmp(a, "--nats-prefix") && i + 1 < argc) {
			o->nats_prefix = argv[++i];
		} else if (!strcmp(a, "--partitions") && i + 1 < argc) {
			o->partitions = (unsigned)strtoul(argv[++i], NULL, 10);
			if (o->partitions < 1 || o->partitions > 1024) {
				*exit_code = usage_error(NULL, "%s", "--partitions: 1 to 1024");
				return -1;
			}
		} else if (!strcmp(a, "--timeout") && i + 1 < argc) {
			int64_t ms;
			const char *v = argv[++i];
			if (duration_parse(v, strlen(v), &ms) < 0) {
				*exit_code = usage_error(NULL, "--timeout: bad duration '%s'", v);
				return -1;
			}
			o->timeout_ms = (long)ms;
		} else if ((!strcmp(a, "--tz") && i + 1 < argc) || !strncmp(a, "--tz=", 5)) {
			struct herr err;
			const char *zone = a[4] == '=' ? a + 5 : argv[++i];
			if (human_set_tz(zone, &err) < 0) {
				*exit_code = usage_error(NULL, "--tz: %s", err.msg);
				return -1;
			}
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			print_usage(stdout);
			*exit_code = CTL_EXIT_OK;
			return -1;
		} else if (!strcmp(a, "--version")) {
			puts("hearthctl " HEARTH_VERSION);
			*exit_code = CTL_EXIT_OK;
			return -1;
		} else {
			*exit_code = usage_error(NULL, "unknown option '%s'", a);
			return -1;
		}
	}
	if (i == argc) {
		*exit_code = usage_error(NULL, "%s", "no command given");
		return -1;
	}
	return i;
}

int main(int argc, char **argv)
{
	struct ctl_opts o = { .socket = getenv("HEARTH_CONTROL"), .nats = getenv("HEARTH_NATS") };
	struct invocation inv = { 0 };
	int rc = CTL_EXIT_USAGE, first;

	if (!o.socket || !*o.socket)
		o.socket = CTL_DEFAULT_SOCKET;
	if (o.nats && !*o.nats)
		o.nats = NULL;
	if ((first = global_options(&o, argc, argv, &rc)) < 0)
		return rc;
	if (!(inv.sub = find_subcommand(argv[first])))
		return usage_error(NULL, "unknown command '%s'", argv[first]);
	inv.req = json_object_new_object();
	inv.pos = calloc((size_t)argc, sizeof(char *));
	if (!inv.req || !inv.pos) {
		ctl_warn("out of memory");
		rc = CTL_EXIT_NO;
		goto out;
	}
	json_object_object_add(inv.req, "cmd", json_object_new_string(inv.sub->cmd ? inv.sub->cmd : ""));
	if ((rc = parse_args(&o, &inv, argc - first - 1, argv + first + 1)) != 0)
		goto out;
	/* `reload --dry-run` asks reload.dry_run: the flag never reaches a real reload */
	if (!strcmp(inv.sub->name, "reload") && json_object_object_get_ex(inv.req, "dry-run", NULL)) {
		json_object_object_del(inv.req, "dry-run");
		json_object_object_add(inv.req, "cmd", json_object_new_string("reload.dry_run"));
		inv.sub = find_subcommand("reload.dry_run");
	}
	if (inv.help)
		rc = run_help(&o, 1, argv + first, NULL);
	else if (inv.sub->run)
		rc = inv.sub->run(&o, inv.npos, inv.pos, inv.req);
	else if ((rc = check_args(&inv)) == 0)
		rc = run_remote(&o, &inv);
out:
	json_object_put(inv.req);
	free(inv.pos);
	return rc;
}
