/*
 * `hearthctl import FILE...` (PROTOCOL.md §8.4): events from JSON lines, JSON arrays
 * and CSV files (ctl_source.c, ctl_csv.c) go to the daemon as control-socket
 * `ingest` requests of up to 1,000 events. Up to four requests are in flight
 * on the one connection, so the daemon always has the next batch while we
 * read the one after it; answers come back in order and each rejection's
 * index is mapped back to its file and line through the batch's origin table.
 *
 * A history is loaded quietly by default (PROTOCOL.md §3.6): the requests
 * say `"load": true`, so the daemon stores and defers; at the end `load.end`
 * has every touched customer evaluated once against the whole timeline, and
 * the import waits for that. --live evaluates each batch as it lands.
 *
 * Nothing here grows with the input: batches live in a fixed ring of slots
 * whose buffers are reused, and only the first IMPORT_ERRORS_KEPT errors are
 * kept (the counts are exact).
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "hearth/json.h"
#include "hearth/ctlclient.h"
#include "hearth/limits.h"
#include "hearth/units.h"

#define IMPORT_BATCH        1000
#define IMPORT_INFLIGHT     4
#define IMPORT_ERRORS_KEPT  100     /* in the --json answer */
#define IMPORT_ERRORS_SHOWN 10      /* in the human summary */
#define PROGRESS_EVERY_US   100000  /* at most 10 redraws a second */

/* A request line is at most 1 MiB (PROTOCOL.md §5.1): a batch ends early rather than pass it. */
#define BATCH_HEAD  "{\"cmd\":\"ingest\",\"events\":["
#define LOAD_HEAD   "{\"cmd\":\"ingest\",\"load\":true,\"events\":["
#define LOAD_STALL_US (60 * 1000000LL)  /* no progress for this long: stop waiting for the load's end */
#define LOAD_POLL_US  20000
#define BATCH_TAIL  "]}"
#define BATCH_BYTES (HEARTH_CONTROL_LINE - 1)

struct origin {
	uint32_t file;
	long line;
};

/* One ingest request: its text and where each of its events came from. */
struct slot {
	char *text;
	size_t len, cap;
	uint32_t n;
	struct origin origin[IMPORT_BATCH];
};

struct import_error {
	uint32_t file;
	long line;
	int fatal;                      /* the file could not be read on: said at once */
	char code[24];
	char message[200];
};

struct import {
	const struct ctl_opts *o;
	const char *head;               /* BATCH_HEAD, or LOAD_HEAD for a quiet load */
	char **files;
	uint32_t nfiles;
	struct source **src;
	uint32_t cur;                   /* the file being read */
	struct ctl_client *cc;
	struct json_tokener *tok;
	struct slot slot[IMPORT_INFLIGHT + 1];
	unsigned oldest, inflight;      /* the ring of slots sent and not answered */
	struct json_object *pending;    /* read, but did not fit the last batch */
	struct origin pending_origin;
	int stop;                       /* a batch failed or the connection dropped */
	/* the tally */
	uint64_t read, accepted, duplicates, rejected;
	struct import_error errors[IMPORT_ERRORS_KEPT];
	size_t nerrors;
	unsigned file_failures;
	struct {                        /* why the import stopped early, if it did */
		char code[32];
		char message[256];
	} failure;
	int unreachable;
	/* the progress bar */
	int tty;
	int64_t start_us, drawn_us;
	uint64_t total_bytes, closed_bytes;   /* total_bytes 0: a pipe, size unknown */
};

static void fail(struct import *im, const char *code, const char *message)
{
	im->stop = 1;
	if (im->failure.code[0])
		return;     /* the first failure is the one that explains the rest */
	snprintf(im->failure.code, sizeof(im->failure.code), "%s", code);
	snprintf(im->failure.message, sizeof(im->failure.message), "%s", message);
}

/* ---- errors, kept in file order ---------------------------------------------------- */

static int before(const struct import_error *a, uint32_t file, long line)
{
	return a->file < file || (a->file == file && a->line <= line);
}

/* Keeps the first IMPORT_ERRORS_KEPT by file and line, whatever order they come in. */
static void note_error(struct import *im, uint32_t file, long line, int fatal, const char *code,
		       const char *message)
{
	size_t at = im->nerrors;

	while (at > 0 && !before(&im->errors[at - 1], file, line))
		at--;
	if (at == IMPORT_ERRORS_KEPT)
		return;
	if (im->nerrors == IMPORT_ERRORS_KEPT)
		im->nerrors--;
	memmove(&im->errors[at + 1], &im->errors[at], (im->nerrors - at) * sizeof(im->errors[0]));
	im->nerrors++;
	struct import_error *e = &im->errors[at];
	e->file = file;
	e->line = line;
	e->fatal = fatal;
	snprintf(e->code, sizeof(e->code), "%s", code);
	snprintf(e->message, sizeof(e->message), "%s", message);
}

static const char *file_name(const struct import *im, uint32_t file)
{
	return strcmp(im->files[file], "-") == 0 ? "<stdin>" : im->files[file];
}

/* ---- the progress bar -------------------------------------------------------------- */

static uint64_t bytes_done(const struct import *im)
{
	return im->closed_bytes + (im->cur < im->nfiles ? source_done_bytes(im->src[im->cur]) : 0);
}

/* 1234567 -> "1,234,567": a count that changes ten times a second must read at a glance. */
static char *grouped(uint64_t n, char *buf, size_t size)
{
	char digits[32];
	int len = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)n);
	size_t o = 0;

	for (int i = 0; i < len && o + 2 < size; i++) {
		if (i > 0 && (len - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = digits[i];
	}
	buf[o] = '\0';
	return buf;
}

static void progress(struct import *im, int final)
{
	int64_t now = mono_now_us();
	char bar[41], count[32], speed[32];

	if (!im->tty || (!final && now - im->drawn_us < PROGRESS_EVERY_US))
		return;
	im->drawn_us = now;
	if (final) {
		fputs("\r\033[K", stderr);
		return;
	}
	double secs = (double)(now - im->start_us) / 1e6;
	double rate = secs > 0 ? (double)im->read / secs : 0;
	if (im->total_bytes) {
		uint64_t done = bytes_done(im);
		size_t fill = (size_t)(done * 40 / im->total_bytes);
		fill = fill > 40 ? 40 : fill;
		memset(bar, '#', fill);
		memset(bar + fill, '.', 40 - fill);
		bar[40] = '\0';
		fprintf(stderr, "\r[%s] %3d%%  %s events  %s events/s\033[K", bar,
			(int)(done * 100 / im->total_bytes), grouped(im->read, count, sizeof(count)),
			grouped((uint64_t)rate, speed, sizeof(speed)));
	} else {
		fprintf(stderr, "\r%s events  %s events/s\033[K", grouped(im->read, count, sizeof(count)),
			grouped((uint64_t)rate, speed, sizeof(speed)));
	}
}

/* ---- reading events into a batch --------------------------------------------------- */

/* The next event of any file, or NULL when every file is done. */
static struct json_object *next_event(struct import *im, struct origin *at)
{
	struct json_object *ev;
	struct herr err;
	long line = 0;

	while (im->cur < im->nfiles) {
		struct source *s = im->src[im->cur];
		enum src_status st = source_next(s, &ev, &line, &err);
		at->file = im->cur;
		at->line = line;
		if (st == SRC_EVENT)
			return ev;
		if (st == SRC_REJECT) {
			im->read++;
			im->rejected++;
			note_error(im, im->cur, line, 0, herr_name(err.code), err.msg);
			continue;
		}
		if (st == SRC_FAIL) {
			im->file_failures++;
			progress(im, 1);
			ctl_warn("%s:%ld: %s; stopped reading it", file_name(im, im->cur),
				 line, err.msg);
			note_error(im, im->cur, line, 1, herr_name(err.code), err.msg);
		}
		im->closed_bytes += source_size(s) ? source_size(s) : source_done_bytes(s);
		source_close(s);
		im->src[im->cur++] = NULL;
	}
	return NULL;
}

static int slot_append(struct slot *b, const char *text, size_t len)
{
	if (b->cap - b->len < len) {
		size_t cap = b->cap ? b->cap : 256 << 10;
		while (cap - b->len < len)
			cap *= 2;
		char *p = realloc(b->text, cap);
		if (!p)
			return -1;
		b->text = p;
		b->cap = cap;
	}
	memcpy(b->text + b->len, text, len);
	b->len += len;
	return 0;
}

/* Adds ev's text to the batch; 1 when the batch is too full to take it. */
static int batch_add(struct import *im, struct slot *b, struct json_object *ev,
		     const struct origin *at)
{
	size_t len;
	const char *text = json_object_to_json_string_length(ev, JSON_C_TO_STRING_PLAIN |
							     JSON_C_TO_STRING_NOSLASHESCAPE, &len);

	if (!text)
		return -1;
	if (strlen(im->head) + len + strlen(BATCH_TAIL) > BATCH_BYTES) {
		im->read++;
		im->rejected++;
		note_error(im, at->file, at->line, 0, "too_large",
			   "the event does not fit in one control request");
		return 0;
	}
	if (b->len + (b->n > 0) + len + strlen(BATCH_TAIL) > BATCH_BYTES)
		return 1;
	if ((b->n > 0 && slot_append(b, ",", 1) < 0) || slot_append(b, text, len) < 0)
		return -1;
	b->origin[b->n++] = *at;
	im->read++;
	return 0;
}

/* Fills a slot with the next batch; 0 events means the input is done. */
static int batch_fill(struct import *im, struct slot *b)
{
	struct json_object *ev;
	struct origin at;
	int rc = 0;

	b->len = b->n = 0;
	if (slot_append(b, im->head, strlen(im->head)) < 0)
		goto nomem;
	while (b->n < IMPORT_BATCH && rc == 0) {
		if (im->pending) {
			ev = im->pending;
			at = im->pending_origin;
			im->pending = NULL;
		} else if (!(ev = next_event(im, &at))) {
			break;
		}
		rc = batch_add(im, b, ev, &at);
		if (rc == 1) {
			im->pending = ev;
			im->pending_origin = at;
		} else {
			json_object_put(ev);
		}
	}
	if (rc < 0 || slot_append(b, BATCH_TAIL, strlen(BATCH_TAIL)) < 0)
		goto nomem;
	return 0;
nomem:
	fail(im, "nomem", "out of memory");
	return -1;
}

/* ---- answers ----------------------------------------------------------------------- */

static int64_t get_int(struct json_object *o, const char *key)
{
	struct json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static const char *get_str(struct json_object *o, const char *key, const char *def)
{
	struct json_object *v;
	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
	       ? json_object_get_string(v) : def;
}

static void take_rejections(struct import *im, const struct slot *b, struct json_object *list)
{
	size_t n = json_object_array_length(list);

	for (size_t i = 0; i < n; i++) {
		struct json_object *r = json_object_array_get_idx(list, i);
		int64_t index = get_int(r, "index");
		struct origin at = { 0, 0 };
		if (index >= 0 && index < b->n)
			at = b->origin[index];
		im->rejected++;
		note_error(im, at.file, at.line, 0, get_str(r, "code", "rejected"),
			   get_str(r, "message", ""));
	}
}

/* A batch was refused whole (store_full, forbidden...): stop sending. */
static void take_failure(struct import *im, struct json_object *ans)
{
	struct json_object *e = NULL;

	json_object_object_get_ex(ans, "error", &e);
	fail(im, get_str(e, "code", "error"), get_str(e, "message", ""));
}

/* What was sent and not answered is unknown: the daemon may have stored it or not. */
static void lost(struct import *im, const char *why)
{
	char msg[256];
	unsigned long n = 0;

	for (unsigned i = 0; i < im->inflight; i++)
		n += im->slot[(im->oldest + i) % (IMPORT_INFLIGHT + 1)].n;
	snprintf(msg, sizeof(msg), "%s; %lu events sent are unconfirmed", why, n);
	fail(im, "unreachable", msg);
	im->unreachable = 1;
}

/* Reads the answer to the oldest batch in flight. */
static int take_answer(struct import *im)
{
	struct slot *b = &im->slot[im->oldest];
	struct json_object *ans, *v;
	struct herr err;
	const char *line;
	size_t len;

	if (ctl_recv(im->cc, &line, &len, -1, &err) != 0) {
		lost(im, err.msg);
		return -1;
	}
	ans = json_parse_whole(im->tok, line, len, &err);
	if (!ans || !json_object_is_type(ans, json_type_object)) {
		json_object_put(ans);
		lost(im, "hearthd sent an answer that is not a JSON object");
		return -1;
	}
	im->oldest = (im->oldest + 1) % (IMPORT_INFLIGHT + 1);
	im->inflight--;
	if (json_object_object_get_ex(ans, "ok", &v) && json_object_get_boolean(v)) {
		im->accepted += (uint64_t)get_int(ans, "accepted");
		im->duplicates += (uint64_t)get_int(ans, "duplicates");
		if (json_object_object_get_ex(ans, "rejected", &v) &&
		    json_object_is_type(v, json_type_array))
			take_rejections(im, b, v);
	} else {
		take_failure(im, ans);
	}
	json_object_put(ans);
	return 0;
}

/* Sends batch after batch, keeping IMPORT_INFLIGHT in flight, then drains. */
static void pump(struct import *im)
{
	struct herr err;
	unsigned next = 0;

	while (!im->stop) {
		struct slot *b = &im->slot[next];
		if (batch_fill(im, b) < 0 || b->n == 0)
			break;
		if (im->inflight == IMPORT_INFLIGHT && take_answer(im) < 0)
			break;
		if (im->stop)
			break;
		if (ctl_send(im->cc, b->text, b->len, &err) < 0) {
			lost(im, err.msg);
			break;
		}
		im->inflight++;
		next = (next + 1) % (IMPORT_INFLIGHT + 1);
		progress(im, 0);
	}
	while (im->inflight > 0 && !im->unreachable)
		take_answer(im);
}

/* ---- the end of a quiet load ------------------------------------------------------- */

static int64_t status_deferred(struct import *im, int *ending)
{
	struct json_object *req = json_object_new_object(), *ans, *v;
	struct herr err;
	int64_t n = -1;

	json_object_object_add(req, "cmd", json_object_new_string("status"));
	ans = ctl_call(im->cc, req, &err);
	json_object_put(req);
	if (ans && json_object_object_get_ex(ans, "deferred", &v)) {
		n = json_object_get_int64(v);
		*ending = json_object_object_get_ex(ans, "load_ending", &v) && json_object_get_boolean(v);
	}
	json_object_put(ans);
	return n;
}

/*
 * Ends the load and waits while the daemon evaluates its customers, so that
 * what `alerts` says right after the import is the outcome. The wait gives up
 * (the daemon goes on) when the count stops falling for LOAD_STALL_US.
 */
static void end_load(struct import *im)
{
	struct json_object *req = json_object_new_object(), *ans;
	struct herr err;
	int64_t last = -1, stalled_since = mono_now_us();
	int ending = 1;

	json_object_object_add(req, "cmd", json_object_new_string("load.end"));
	ans = ctl_call(im->cc, req, &err);
	json_object_put(req);
	if (!ans) {
		ctl_warn("ending the load: %s; the daemon evaluates it after evaluation.load_idle", err.msg);
		return;
	}
	json_object_put(ans);
	for (;;) {
		int64_t n = status_deferred(im, &ending);
		if (n <= 0 || !ending)
			return;
		if (n != last) {
			last = n;
			stalled_since = mono_now_us();
			if (im->tty && !im->o->json)
				fprintf(stderr, "\revaluating the load: %lld customer(s) to go\033[K", (long long)n);
		} else if (mono_now_us() - stalled_since > LOAD_STALL_US) {
			ctl_warn("the daemon is still evaluating %lld customer(s) of the load", (long long)n);
			return;
		}
		usleep(LOAD_POLL_US);
	}
}

/* ---- the report -------------------------------------------------------------------- */

static void report_json(const struct import *im)
{
	struct json_object *o = json_object_new_object(), *list = json_object_new_array();

	json_object_object_add(o, "accepted", json_object_new_int64((int64_t)im->accepted));
	json_object_object_add(o, "duplicates", json_object_new_int64((int64_t)im->duplicates));
	json_object_object_add(o, "rejected", json_object_new_int64((int64_t)im->rejected));
	for (size_t i = 0; i < im->nerrors; i++) {
		const struct import_error *e = &im->errors[i];
		struct json_object *r = json_object_new_object();
		json_object_object_add(r, "file", json_object_new_string(file_name(im, e->file)));
		json_object_object_add(r, "line", json_object_new_int64(e->line));
		json_object_object_add(r, "code", json_object_new_string(e->code));
		json_object_object_add(r, "message", json_object_new_string(e->message));
		json_object_array_add(list, r);
	}
	json_object_object_add(o, "errors", list);
	if (im->failure.code[0]) {
		struct json_object *f = json_object_new_object();
		json_object_object_add(f, "code", json_object_new_string(im->failure.code));
		json_object_object_add(f, "message", json_object_new_string(im->failure.message));
		json_object_object_add(o, "failed", f);
	}
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

static void report_human(const struct import *im, double rate)
{
	printf("imported ");
	for (uint32_t i = 0; i < im->nfiles && i < 3; i++)
		printf("%s%s", i ? ", " : "", file_name(im, i));
	if (im->nfiles > 3)
		printf(" and %u more files", im->nfiles - 3);
	printf(": %llu accepted, %llu duplicates, %llu rejected (%.0f events/s)\n",
	       (unsigned long long)im->accepted, (unsigned long long)im->duplicates,
	       (unsigned long long)im->rejected, rate);
	fflush(stdout);
	uint64_t shown = 0;
	for (size_t i = 0; i < im->nerrors && shown < IMPORT_ERRORS_SHOWN; i++) {
		const struct import_error *e = &im->errors[i];
		if (e->fatal)
			continue;   /* said when it happened */
		fprintf(stderr, "%s:%ld: %s: %s\n", file_name(im, e->file), e->line, e->code,
			e->message);
		shown++;
	}
	if (im->rejected > shown)
		fprintf(stderr, "... and %llu more rejected (--json lists the first %d)\n",
			(unsigned long long)(im->rejected - shown), IMPORT_ERRORS_KEPT);
}

static int report(const struct import *im)
{
	double secs = (double)(mono_now_us() - im->start_us) / 1e6;
	uint64_t done = im->accepted + im->duplicates + im->rejected;
	double rate = secs > 0 ? (double)done / secs : 0;

	if (im->unreachable)
		ctl_warn("%s", im->failure.message);
	else if (im->failure.code[0])
		ctl_warn("%s: %s", im->failure.code, im->failure.message);
	if (im->o->json)
		report_json(im);
	else
		report_human(im, rate);
	if (im->unreachable)
		return CTL_EXIT_UNREACHABLE;
	return im->rejected || im->file_failures || im->failure.code[0] ? CTL_EXIT_NO : CTL_EXIT_OK;
}

/* ---- the whole import -------------------------------------------------------------- */

/*
 * Every file is opened before anything is sent, so a typo imports nothing.
 * Returns the exit code: a file that is not there is a usage error, one that
 * is there but unusable is bad input.
 */
static int open_all(struct import *im)
{
	struct herr err;
	int sizes_known = 1;

	im->src = calloc(im->nfiles, sizeof(*im->src));
	if (!im->src) {
		ctl_warn("out of memory");
		return CTL_EXIT_NO;
	}
	for (uint32_t i = 0; i < im->nfiles; i++) {
		if (!(im->src[i] = source_open(im->files[i], &err))) {
			ctl_warn("%s", err.msg);
			return err.code == HERR_IO ? CTL_EXIT_USAGE : CTL_EXIT_NO;
		}
		im->total_bytes += source_size(im->src[i]);
		sizes_known = sizes_known && source_size(im->src[i]) > 0;
	}
	if (!sizes_known)
		im->total_bytes = 0;
	return CTL_EXIT_OK;
}

static void import_free(struct import *im)
{
	for (uint32_t i = 0; im->src && i < im->nfiles; i++)
		source_close(im->src[i]);
	free(im->src);
	json_object_put(im->pending);
	for (unsigned i = 0; i <= IMPORT_INFLIGHT; i++)
		free(im->slot[i].text);
	if (im->tok)
		json_tokener_free(im->tok);
	ctl_close(im->cc);
	free(im);
}

int import_run(const struct ctl_opts *o, int nfiles, char **files, int live)
{
	struct import *im = calloc(1, sizeof(*im));
	struct herr err;
	int rc;

	if (!im) {
		ctl_warn("out of memory");
		return CTL_EXIT_NO;
	}
	im->o = o;
	im->head = live ? BATCH_HEAD : LOAD_HEAD;
	im->files = files;
	im->nfiles = (uint32_t)nfiles;
	im->tty = isatty(STDERR_FILENO);
	if ((rc = open_all(im)) != CTL_EXIT_OK)
		goto out;
	if (!(im->tok = json_tokener_new())) {
		rc = CTL_EXIT_NO;
		goto out;
	}
	if (!(im->cc = ctl_connect(o->socket, &err))) {
		ctl_warn("%s", err.msg);
		rc = CTL_EXIT_UNREACHABLE;
		goto out;
	}
	im->start_us = im->drawn_us = mono_now_us();
	pump(im);
	progress(im, 1);
	if (!live && !im->unreachable)
		end_load(im);
	rc = report(im);
out:
	import_free(im);
	return rc;
}
