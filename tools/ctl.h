/*
 * What hearthctl's files share: exit codes (PROTOCOL.md §8.3), the options every
 * subcommand sees, the human-output helpers of ctl_table.c, the answer printers
 * of ctl_print.c, the input sources of ctl_source.c and ctl_csv.c, and the
 * import driver of ctl_import.c. Nothing here is used outside hearthctl; what
 * other programs need lives in libhearth.
 */
#ifndef HEARTH_TOOLS_CTL_H
#define HEARTH_TOOLS_CTL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hearth/err.h"

struct json_object;
struct json_tokener;

/* PROTOCOL.md §8.3 */
enum {
	CTL_EXIT_OK = 0,
	CTL_EXIT_NO = 1,          /* the daemon said no (ok:false, rejected events) */
	CTL_EXIT_USAGE = 2,
	CTL_EXIT_UNREACHABLE = 3, /* connect failed or the connection dropped */
};

#define CTL_DEFAULT_SOCKET "/run/hearth/control.sock"

struct ctl_opts {
	const char *socket;
	int json;                 /* print answers as received */
	/* cluster mode (ctl_nats.c): the NATS URL(s) instead of the control socket */
	const char *nats;
	const char *nats_prefix;  /* "hearth" */
	unsigned partitions;      /* 16 */
	long timeout_ms;          /* import: how long PubAcks may take in all */
};

/* Prints "hearthctl: ..." on stderr. */
void ctl_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- ctl_table.c: cells, times and aligned tables ---------------------------------- */

/* Cell formats of a table column. */
enum cell_fmt {
	CELL_TEXT,        /* strings as they are, other values as compact JSON */
	CELL_NUM,         /* right-aligned */
	CELL_TIME,        /* RFC 3339 answer time -> local time (relative) */
	CELL_DURATION,    /* integer ms -> "2d 4h" */
	CELL_BYTES,       /* integer bytes -> "64.0 MiB" */
	CELL_ATTRS,       /* flat object -> "key=value key=value" */
};

struct column {
	const char *header;
	const char *path;         /* key in the row; "a.b" descends into objects */
	enum cell_fmt fmt;
};

/* The instant relative times are measured from (the daemon's "now" when known). */
void human_set_now(int64_t ms);
/* Times are shown in this zone (an IANA name, see tz_load); default the system's. */
int human_set_tz(const char *name, struct herr *err);
/* "2026-11-20 10:00 (3d ago)" in local time; s as it is when not an RFC 3339 time. */
char *human_time(const char *s, char *buf, size_t size);
char *human_time_ms(int64_t ms, char *buf, size_t size);
char *human_bytes(int64_t n, char *buf, size_t size);
/* One value as a cell; returns buf. */
char *human_cell(struct json_object *v, enum cell_fmt fmt, char *buf, size_t size);
/* Looks up a dotted path; NULL when absent. */
struct json_object *json_path(struct json_object *o, const char *path);
/* Terminal columns the UTF-8 text takes (wcwidth: wide CJK counts 2, combining marks 0). */
size_t text_width(const char *s);
/* Prints text and pads it with spaces to width columns. */
void pad_to(FILE *out, const char *text, size_t width);

/* Prints rows (an array of objects) under the columns, aligned; prefix indents. */
int table_print(FILE *out, const char *prefix, const struct column *cols, size_t ncols,
		struct json_object *rows);
/* "key: value" lines with the keys aligned; values already formatted. */
struct kv { const char *key; char value[512]; };
void kv_print(FILE *out, const char *prefix, const struct kv *kv, size_t n);

/* ---- ctl_print.c: one printer per answer shape ------------------------------------- */

typedef int (*ctl_printer)(struct json_object *ans);

int print_json(struct json_object *ans);     /* pretty JSON: the fallback */
int print_ping(struct json_object *ans);
int print_status(struct json_object *ans);
int print_metrics(struct json_object *ans);
int print_ingest(struct json_object *ans);
int print_customer(struct json_object *ans);
int print_customers(struct json_object *ans);
int print_timeline(struct json_object *ans);
int print_forget(struct json_object *ans);
int print_commands(struct json_object *ans);
int print_alerts(struct json_object *ans);
int print_done(struct json_object *ans);
int print_silence_add(struct json_object *ans);
int print_silences(struct json_object *ans);
int print_rules(struct json_object *ans);
int print_value(struct json_object *ans);
int print_explain(struct json_object *ans);
int print_top(struct json_object *ans);
int print_replay(struct json_object *ans);
int print_dry_run(struct json_object *ans);

/* ---- ctl_source.c, ctl_csv.c, ctl_reader.c: events from files ---------------------- */

/* Buffered reading of one input (ctl_reader.c); the buffer grows by READ_CHUNK. */
#define READ_CHUNK   (256u << 10)
struct reader {
	int fd;
	char *buf;
	size_t cap, pos, len;     /* buf[pos..len) is unread */
	size_t limit;             /* the buffer grows up to this */
	int eof;
	uint64_t bytes_read;      /* for the progress bar */
};

enum src_status {
	SRC_EVENT = 0,            /* *event is set */
	SRC_REJECT,               /* rejected here; code and message in err */
	SRC_END,
	SRC_FAIL,                 /* cannot go on with this file; err says why */
};

struct source;

/*
 * path "-" is standard input. Fails when the file cannot be opened (HERR_IO)
 * or its start is unusable (a CSV header without `ts`); err names the file.
 * Errors of source_next name no file: the caller knows it and the line.
 */
struct source *source_open(const char *path, struct herr *err);
void source_close(struct source *s);
/*
 * The next event. *line is the 1-based position PROTOCOL.md §8.4 reports: the line
 * of a JSON line, the first line of a CSV record, the element number of an
 * array. On SRC_EVENT the caller owns *event.
 */
enum src_status source_next(struct source *s, struct json_object **event, long *line,
			    struct herr *err);
/* Bytes read so far and the file's size (0 when unknown: a pipe). */
uint64_t source_done_bytes(const struct source *s);
uint64_t source_size(const struct source *s);

/*
 * Moves the unread bytes to the front and reads more, growing the buffer up to
 * r->limit. 1 when bytes came, 0 at end of file or with the buffer full at its
 * limit, -1 on a read error (errno set).
 */
int reader_fill(struct reader *r);

struct csv;
/* Reads the header from r; err names file:line on failure. r stays the caller's. */
struct csv *csv_open(struct reader *r, const char *name, struct herr *err);
void csv_free(struct csv *c);
enum src_status csv_next(struct csv *c, struct json_object **event, long *line,
			 struct herr *err);
/* Whether a first line names the CSV header ("customer,..."). */
int csv_looks_like_header(const char *line, size_t len);

/* ---- ctl_import.c ------------------------------------------------------------------ */

int import_run(const struct ctl_opts *o, int nfiles, char **files, int live);

/* ---- ctl_backup.c ------------------------------------------------------------------ */

int backup_run(const struct ctl_opts *o, const char *file);

/* ---- ctl_watch.c: live alerts ------------------------------------------------------ */

/* endpoint/topic may be NULL, after < 0 starts at the current seq, count < 0 never stops. */
/* ctl_backtest.c: rule NULL when opts holds a `when` */
int backtest_run(const struct ctl_opts *o, const char *rule, struct json_object *opts);
int watch_run(const struct ctl_opts *o, const char *endpoint, const char *topic, long after, long count);

/* ---- ctl_nats.c: --nats, one entry point to a cluster (PROTOCOL.md §9) -------------- */

/* The answer of the owning shard (a command naming a customer) or the merged answers of all. */
struct json_object *nats_call(const struct ctl_opts *o, struct json_object *req, char **raw);
int nats_import_run(const struct ctl_opts *o, int nfiles, char **files, int live);
int nats_watch_run(const struct ctl_opts *o, long after, long count);

#endif
