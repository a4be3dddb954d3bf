/*
 * The control socket, served by its own thread (issue 14: readers never
 * wait). The control thread owns the listening socket and every connection:
 * each descriptor is non-blocking; a connection owns an input buffer capped at
 * one request line and an output buffer that, past HEARTH_CONTROL_OUTBUF,
 * stops us reading more of its requests until the peer drains it. So neither
 * an idle, a half-written nor a non-reading peer can hold up the thread or
 * grow memory without bound.
 *
 * Each line is parsed and checked here. Reader commands (CMD_READER) are
 * answered here too, on a read transaction of their own over the store and
 * the overlay of the writer's pending state (hearth/overlay.h), which is
 * brought up to date before the transaction begins: whatever the writer
 * acknowledged before the request came is seen. Every other command goes to
 * the writer (relay.c) and its answer comes back; meanwhile the connection's
 * later lines wait, so its answers go out in the order of its requests.
 *
 * From pthread_create to pthread_join the listening socket, the connections,
 * the thread's loop and its end of the queue belong to the control thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#include "control_impl.h"
#include "hearth/alert_states.h"
#include "hearth/codec.h"
#include "hearth/commands.h"
#include "hearth/config.h"
#include "hearth/limits.h"
#include "hearth/thread.h"
#include "hearth/log.h"
#include "hearth/loop.h"
#include "hearth/overlay.h"
#include "hearth/server.h"
#include "hearth/store.h"
#include "hearth/units.h"

#define PEER_GROUPS_MAX 64
#define READ_CHUNK      65536
#define TURN_BUDGET_US  2000    /* then other peers get their turn */
#define FWD_PIPELINE    16      /* a peer's requests at the writer at once */
#define FOLD_SLICE      256     /* customers of the writer's notes folded in per loop turn at most, */
#define FOLD_STEP       16      /* this many at a time, */
#define FOLD_BUDGET_US  200     /* until the turn has taken this long */
#define CATCH_UP_SLICE  256     /* alert journal entries read per loop turn */
#define FOLLOW_JOURNAL_MS 5000  /* ... for this long after a command that read alert states */

struct client {
	struct control *ctl;
	int fd;                         /* -1: closed, waiting for its forwarded request to come back */
	uid_t uid;
	gid_t gid;
	pid_t pid;
	gid_t groups[PEER_GROUPS_MAX];
	int ngroups;
	char *in;
	size_t inlen, incap;
	int discarding;                 /* skipping the rest of an oversized line */
	struct wbuf out;
	size_t outoff;
	int closing;
	int resume_timer;               /* more complete lines wait: served next turn */
	/*
	 * Requests at the writer, answered there in order: a peer pipelining writes
	 * (an import) keeps the writer busy while its next lines are parsed here.
	 * What must come after their answers waits, parked: a read (it must see
	 * them), an error answer (it must not overtake them), a job (answered after
	 * its slices, so nothing may be at the writer beside it). While a job is
	 * there, later lines wait for it.
	 */
	unsigned forwarded;
	int job_out;
	struct {
		int used;
		const struct command *cmd;
		struct json_object *req;        /* NULL: answer err */
		struct herr err;
	} parked;
};

static void client_close(struct client *c);
static void client_update_events(struct client *c);
static void on_resume(struct loop *loop, void *ctx);

static int set_nonblocking(int fd)
{
	int flags = fcntl(fd, F_GETFL);
	return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

static void read_peer(struct client *c)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	c->uid = (uid_t)-1;
	c->gid = (gid_t)-1;
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
		c->uid = cred.uid;
		c->gid = cred.gid;
		c->pid = cred.pid;
	}
#ifdef SO_PEERGROUPS
	len = sizeof(c->groups);
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, c->groups, &len) == 0)
		c->ngroups = (int)(len / sizeof(gid_t));
#endif
}

static int client_is_admin(const struct client *c)
{
	const struct snapshot *s = c->ctl->snap;

	if (c->uid == 0 || c->uid == geteuid())
		return 1;
	for (size_t i = 0; i < s->nadmin; i++) {
		if (c->gid == s->admin_gids[i])
			return 1;
		for (int j = 0; j < c->ngroups; j++)
			if (c->groups[j] == s->admin_gids[i])
				return 1;
	}
	return 0;
}

static void append_answer(struct client *c, struct json_object *ans)
{
	const char *text = json_object_to_json_string_ext(ans, JSON_C_TO_STRING_PLAIN |
								JSON_C_TO_STRING_NOSLASHESCAPE);
	struct json_object *ok;

	if (!json_object_object_get_ex(ans, "ok", &ok) || !json_object_get_boolean(ok))
		c->ctl->counters.errors++;
	if (!text) {
		static const char oom[] =
			"{\"ok\":false,\"error\":{\"code\":\"store_error\",\"message\":\"out of memory\"}}";
		text = oom;
	}
	wbuf_put(&c->out, text, strlen(text));
	wbuf_u8(&c->out, '\n');
}

static void append_error(struct client *c, const struct herr *err)
{
	struct json_object *ans = error_answer(err);

	append_answer(c, ans);
	json_object_put(ans);
}

static void want_resume(struct client *c)
{
	if (!c->resume_timer)
		c->resume_timer = loop_timer_add(c->ctl->loop, 0, on_resume, c);
}

/* ---- the queue from the writer ------------------------------------------------- */

static void take_snapshot(struct control *ctl, struct snapshot *s)
{
	snapshot_free(ctl->snap);
	ctl->snap = s;
}

/* A forwarded request is back: its answer goes out, then the lines after it. */
static void take_answer(struct fwd *f)
{
	struct client *c = f->c;

	c->forwarded--;
	if (!f->cmd->fn)
		c->job_out = 0;
	if (c->fd < 0) {                /* the peer went away meanwhile */
		if (!c->forwarded)
			client_close(c);
	} else {
		append_answer(c, f->ans);
		want_resume(c);
	}
	json_object_put(f->ans);
	free(f);
}

/*
 * Everything the writer has sent so far. Answers are only queued for their
 * connections (served on a timer), never served from in here: this runs in
 * the middle of answering other connections too.
 */
static void drain(struct control *ctl)
{
	struct msg m;
	int rc;

	while ((rc = relay_recv(ctl, ctl->t_pair, &m)) == 0) {
		switch (m.kind) {
		case MSG_NOTE:
			overlay_queue(ctl->ov, m.ptr);
			break;
		case MSG_ANSWER: take_answer(m.ptr); break;
		case MSG_SNAPSHOT: take_snapshot(ctl, m.ptr); break;
		case MSG_STOP:
			ctl->stopping = 1;
			loop_stop(ctl->loop);
			break;
		default:
			msg_drop(&m);
			break;
		}
	}
	if (rc < 0)
		log_error("control, bad message from the writer (%s)", zmq_strerror(errno));
}

static void on_pair(struct loop *loop, short revents, void *ctx)
{
	(void)loop, (void)revents;
	drain(ctx);
}

/* ---- requests ------------------------------------------------------------------ */

static struct json_object *answer_here(struct control *ctl, const struct command *command,
				       struct json_object *req)
{
	struct json_object *ans = json_object_new_object();
	struct herr err = { 0 };

	drain(ctl);                     /* before the read transaction: read-your-writes */
	struct reader rd = {
		.st = ctl->st, .ov = ctl->ov, .as = ctl->alerts, .board = ctl->board, .cfg = ctl->snap->cfg,
		.rs = ctl->snap->rs, .started_mono_ms = ctl->started_mono_ms, .tok = ctl->scan_tok,
	};
	json_object_object_add(ans, "ok", json_object_new_boolean(1));
	if (command->read(&rd, req, ans, &err) < 0) {
		json_object_put(ans);
		ans = error_answer(&err);
	}
	if (rd.read_alerts)
		ctl->read_us = mono_now_us();
	return ans;
}

/* A parsed line: answered here, or handed to the writer; req NULL: the error err. */
static void serve(struct client *c, const struct command *command, struct json_object *req,
		  struct herr *err)
{
	struct control *ctl = c->ctl;
	struct json_object *ans;
	struct fwd *f;

	if (!req) {
		append_error(c, err);
		return;
	}
	if (command->flags & CMD_READER) {
		ans = answer_here(ctl, command, req);
		json_object_put(req);
		append_answer(c, ans);
		json_object_put(ans);
		return;
	}
	if (!(f = calloc(1, sizeof(*f)))) {
		json_object_put(req);
		herr_set(err, HERR_NOMEM, "out of memory");
		append_error(c, err);
		return;
	}
	*f = (struct fwd){ .c = c, .cmd = command, .req = req };
	if (relay_send(ctl, ctl->t_pair, MSG_REQUEST, f) < 0) {
		log_error("control, cannot hand a request to the writer (%s)", zmq_strerror(errno));
		json_object_put(req);
		free(f);
		herr_set(err, HERR_IO, "the daemon is stopping");
		append_error(c, err);
		return;
	}
	c->forwarded++;
	c->job_out = !command->fn;
}

/* One request line; 1 when it waits, parked, for the answers at the writer. */
static int handle_line(struct client *c, const char *line, size_t len)
{
	struct control *ctl = c->ctl;
	struct control_peer peer = { .uid = c->uid, .pid = c->pid, .admin = client_is_admin(c) };
	const struct command *command = NULL;
	struct herr err = { 0 };
	struct json_object *req;

	ctl->counters.requests++;
	req = request_parse(ctl->tok, line, len, &command, &err);
	if (req && request_allowed(command, &peer, &err) < 0) {
		ctl->counters.forbidden++;
		json_object_put(req);
		req = NULL;
	}
	if (c->forwarded && (!req || (command->flags & CMD_READER) || !command->fn)) {
		c->parked.used = 1;
		c->parked.cmd = command;
		c->parked.req = req;
		c->parked.err = err;
		return 1;
	}
	serve(c, command, req, &err);
	return 0;
}

/* Whether the next line must wait for answers at the writer. */
static int blocked(const struct client *c)
{
	return c->job_out || c->parked.used || c->forwarded >= FWD_PIPELINE;
}

static void client_flush(struct client *c)
{
	while (c->outoff < c->out.len) {
		ssize_t n = send(c->fd, c->out.data + c->outoff, c->out.len - c->outoff, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			/* the peer is gone: nothing more can reach it */
			c->closing = 1;
			wbuf_reset(&c->out);
			c->outoff = 0;
			c->inlen = 0;
			return;
		}
		c->outoff += (size_t)n;
	}
	if (c->outoff == c->out.len) {
		wbuf_reset(&c->out);
		c->outoff = 0;
	}
}

static int backlogged(const struct client *c)
{
	return c->out.len - c->outoff > HEARTH_CONTROL_OUTBUF;
}

static int has_line(const struct client *c)
{
	return c->inlen && memchr(c->in, '\n', c->inlen) != NULL;
}

/*
 * Answers complete lines until this peer has had its turn (TURN_BUDGET_US):
 * a peer pipelining large requests must not hold up a `status` on another
 * connection. What is left is served on the next turn of the loop.
 */
static void process_input(struct client *c)
{
	size_t start = 0;
	int64_t until = mono_now_us() + TURN_BUDGET_US;

	if (c->parked.used && !c->forwarded) {
		c->parked.used = 0;
		serve(c, c->parked.cmd, c->parked.req, &c->parked.err);
		c->parked.req = NULL;
	}
	while (start < c->inlen && !blocked(c) && !backlogged(c) && (start == 0 || mono_now_us() < until)) {
		char *nl = memchr(c->in + start, '\n', c->inlen - start);
		if (!nl)
			break;
		size_t len = (size_t)(nl - (c->in + start));
		if (c->discarding) {
			c->discarding = 0;
		} else if (len > HEARTH_CONTROL_LINE) {
			struct herr err;
			herr_set(&err, HERR_TOO_LARGE, "request line longer than %u bytes",
				 HEARTH_CONTROL_LINE);
			append_error(c, &err);
		} else if (handle_line(c, c->in + start, len)) {
			start += len + 1;
			break;
		}
		start += len + 1;
	}
	memmove(c->in, c->in + start, c->inlen - start);
	c->inlen -= start;
	/* An unfinished line past the limit can never be served: answer now, skip the rest. */
	if (c->inlen > HEARTH_CONTROL_LINE && !c->discarding) {
		struct herr err;
		herr_set(&err, HERR_TOO_LARGE, "request line longer than %u bytes", HEARTH_CONTROL_LINE);
		append_error(c, &err);
		c->discarding = 1;
		c->inlen = 0;
	} else if (c->discarding && !memchr(c->in, '\n', c->inlen)) {
		c->inlen = 0;
	}
	if (has_line(c) && !blocked(c) && !backlogged(c))
		want_resume(c);
}

static int client_read(struct client *c)
{
	for (int rounds = 0; rounds < 16; rounds++) {
		if (c->incap - c->inlen < READ_CHUNK) {
			size_t cap = c->incap ? c->incap * 2 : READ_CHUNK * 2;
			char *in = realloc(c->in, cap);
			if (!in)
				return -1;
			c->in = in;
			c->incap = cap;
		}
		ssize_t n = recv(c->fd, c->in + c->inlen, c->incap - c->inlen, 0);
		if (n == 0)
			return -1;
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		c->inlen += (size_t)n;
		process_input(c);
		if (backlogged(c) || has_line(c))
			return 0; /* its turn is over: read more when its lines are answered */
	}
	return 0;
}

/* A peer that closed its side still gets the answers to every line it sent. */
static int finished(const struct client *c)
{
	return c->closing && !c->forwarded && !c->parked.used && !has_line(c) && c->outoff == c->out.len;
}

static void on_client(struct loop *loop, short revents, void *ctx)
{
	struct client *c = ctx;

	(void)loop;
	if ((revents & ZMQ_POLLIN) && client_read(c) < 0)
		c->closing = 1;         /* the peer closed: still deliver answers to what it sent */
	if (c->inlen && !backlogged(c))
		process_input(c);
	client_flush(c);
	if (finished(c) || (revents & ZMQ_POLLERR)) {
		client_close(c);
		return;
	}
	client_update_events(c);
}

static void on_resume(struct loop *loop, void *ctx)
{
	struct client *c = ctx;

	(void)loop;
	c->resume_timer = 0;
	process_input(c);
	client_flush(c);
	if (finished(c)) {
		client_close(c);
		return;
	}
	client_update_events(c);
}

static void client_update_events(struct client *c)
{
	short events = 0;

	if (!backlogged(c) && !has_line(c) && !c->closing)
		events |= ZMQ_POLLIN;
	if (c->outoff < c->out.len)
		events |= ZMQ_POLLOUT;
	loop_set_events(c->ctl->loop, NULL, c->fd, events);
}

/*
 * A client with a request at the writer stays listed, closed (fd -1), until
 * its answer comes back (take_answer) or the thread stops.
 */
static void client_close(struct client *c)
{
	struct control *ctl = c->ctl;

	if (c->fd >= 0) {
		if (c->resume_timer)
			loop_timer_cancel(ctl->loop, c->resume_timer);
		c->resume_timer = 0;
		loop_unwatch(ctl->loop, NULL, c->fd);
		close(c->fd);
		c->fd = -1;
		free(c->in);
		c->in = NULL;
		wbuf_free(&c->out);
	}
	if (c->forwarded && !ctl->stopping)
		return;
	json_object_put(c->parked.req);
	c->parked.req = NULL;
	c->parked.used = 0;
	for (size_t i = 0; i < ctl->n; i++)
		if (ctl->clients[i] == c) {
			ctl->clients[i] = ctl->clients[--ctl->n];
			break;
		}
	free(c);
}

static void on_accept(struct loop *loop, short revents, void *ctx)
{
	struct control *ctl = ctx;

	(void)revents;
	for (int i = 0; i < 64; i++) {
		int fd = accept4(ctl->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_warning("control, accept failed (%s)", strerror(errno));
			return;
		}
		if (ctl->n >= HEARTH_CONTROL_CLIENTS) {
			log_warning("control, refusing a connection: %d already open",
				    HEARTH_CONTROL_CLIENTS);
			close(fd);
			continue;
		}
		struct client *c = calloc(1, sizeof(*c));
		if (!c || (ctl->n == ctl->cap && !(ctl->clients = realloc(ctl->clients,
				(ctl->cap = ctl->cap ? ctl->cap * 2 : 16) * sizeof(*ctl->clients))))) {
			free(c);
			close(fd);
			log_error("control, out of memory accepting a connection");
			return;
		}
		c->ctl = ctl;
		c->fd = fd;
		wbuf_init(&c->out);
		read_peer(c);
		if (loop_watch(loop, NULL, fd, ZMQ_POLLIN, on_client, c) < 0) {
			close(fd);
			free(c);
			continue;
		}
		ctl->clients[ctl->n++] = c;
	}
}

/* ---- the thread ------------------------------------------------------------------ */

/* Before each poll: the counters `metrics` shows, posted for the writer. */
/*
 * Before each wait: the counters posted, and a slice of the writer's notes
 * folded in (~0.15 ms: a request that comes in meanwhile waits no longer).
 */
/*
 * While commands that read alert states come in, the alert journal is read a
 * slice at a time between them, so that the next one has little left to read
 * (and while none do, the copy is not kept up, nor its memory).
 */
static int catch_up_alerts(struct control *ctl)
{
	struct herr err = { 0 };
	MDB_txn *txn;
	int more;

	if (mono_now_us() - ctl->read_us > FOLLOW_JOURNAL_MS * 1000 ||
	    store_shared_begin(ctl->st, &txn, &err) < 0)
		return 0;
	more = alert_states_catch_up(ctl->alerts, ctl->st, txn, CATCH_UP_SLICE, &err);
	store_shared_end(ctl->st, txn);
	if (more < 0)
		log_error("control, %s", err.msg); /* the next read reports it too */
	return more > 0;
}

/*
 * A slice of the writer's notes folded in: 1 while more are queued. Bounded in
 * time as well as in customers: right after the map of pending customers
 * doubles, its moves fault in the new table's pages, and 256 customers took
 * 3-4 ms of CPU there.
 */
static int fold_notes(struct control *ctl)
{
	int64_t until = mono_now_us() + FOLD_BUDGET_US;
	int more = 1;

	for (size_t done = 0; more > 0 && done < FOLD_SLICE && (done == 0 || mono_now_us() < until); done += FOLD_STEP)
		more = overlay_fold(ctl->ov, FOLD_STEP);
	return more > 0;
}

/*
 * Before each wait: the counters posted, then a slice of the writer's notes
 * folded in or of the alert journal read (~0.15 ms: a request that comes in
 * meanwhile waits no longer).
 */
static int64_t before_poll(struct loop *loop, void *ctx)
{
	struct control *ctl = ctx;
	int more;

	(void)loop;
	ctl->counters.connections = ctl->n;
	board_put_control(ctl->board, &ctl->counters);
	more = fold_notes(ctl);
	if (!more)
		more = catch_up_alerts(ctl);
	return more ? 0 : -1;
}

static void *control_main(void *arg)
{
	struct control *ctl = arg;

	thread_setup("hearth-control", 0, "control");
	thread_prefer_latency("control");
	if (loop_run(ctl->loop) < 0)
		log_error("control, the control thread stops: control requests go unanswered");
	ctl->stopping = 1;
	while (ctl->n > 0) {
		struct client *c = ctl->clients[0];
		if (c->fd >= 0)
			client_flush(c);
		client_close(c);
	}
	return NULL;
}

/* Signals belong to the writer's signalfd: the control thread takes none of them. */
static int start_thread(struct control *ctl, struct herr *err)
{
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	rc = pthread_sigmask(SIG_BLOCK, &all, &old);
	if (rc == 0) {
		rc = pthread_create(&ctl->thread, NULL, control_main, ctl);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	if (rc != 0)
		return herr_set(err, HERR_IO, "control, cannot start the control thread (%s)", strerror(rc));
	ctl->started = 1;
	return 0;
}

/* ---- open and close (on the writer) ----------------------------------------------- */

static int make_parent_dir(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

static int bind_path(struct control *ctl, const char *path, unsigned mode, struct herr *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct stat sb;
	int fd;

	if (strlen(path) >= sizeof(addr.sun_path))
		return herr_set(err, HERR_IO, "control, socket path '%s' is too long", path);
	strcpy(addr.sun_path, path);
	make_parent_dir(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return herr_set(err, HERR_IO, "control, socket() failed (%s)", strerror(errno));
	/* A socket left by a run that did not stop cleanly is replaced; a live one is not. */
	if (lstat(path, &sb) == 0 && S_ISSOCK(sb.st_mode)) {
		if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
			close(fd);
			return herr_set(err, HERR_IO, "control, another daemon answers on '%s'", path);
		}
		unlink(path);
	}
	close(fd);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return herr_set(err, HERR_IO, "control, socket() failed (%s)", strerror(errno));
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || chmod(path, mode) < 0 ||
	    listen(fd, 128) < 0) {
		herr_set(err, HERR_IO, "control, cannot listen on '%s' (%s)", path, strerror(errno));
		close(fd);
		return -1;
	}
	ctl->listen_fd = fd;
	ctl->path = strdup(path);
	return 0;
}

struct control *control_open(struct server *srv, int listen_fd, struct herr *err)
{
	struct control *ctl = calloc(1, sizeof(*ctl));

	if (!ctl) {
		herr_set(err, HERR_NOMEM, "out of memory");
		return NULL;
	}
	ctl->srv = srv;
	ctl->st = srv->st;
	ctl->started_mono_ms = srv->started_mono_ms;
	ctl->listen_fd = -1;
	ctl->tok = json_tokener_new_ex(64);
	ctl->scan_tok = json_tokener_new();
	ctl->loop = loop_new();
	ctl->ov = overlay_new();
	ctl->alerts = alert_states_new();
	ctl->board = srv->board;
	ctl->snap = snapshot_new(srv);
	if (!ctl->tok || !ctl->scan_tok || !ctl->loop || !ctl->ov || !ctl->alerts || !ctl->board || !ctl->snap) {
		herr_set(err, HERR_NOMEM, "out of memory");
		goto fail;
	}
	json_tokener_set_flags(ctl->tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	if (listen_fd >= 0) {
		ctl->listen_fd = listen_fd;
		set_nonblocking(listen_fd);
	} else if (bind_path(ctl, srv->cfg->control_path, srv->cfg->control_mode, err) < 0) {
		goto fail;
	}
	if (relay_open(ctl, err) < 0)
		goto fail;
	if (loop_watch(ctl->loop, NULL, ctl->listen_fd, ZMQ_POLLIN, on_accept, ctl) < 0 ||
	    loop_watch(ctl->loop, ctl->t_pair, -1, ZMQ_POLLIN, on_pair, ctl) < 0) {
		herr_set(err, HERR_NOMEM, "out of memory");
		goto fail;
	}
	loop_set_prepare(ctl->loop, before_poll, ctl);
	if (start_thread(ctl, err) < 0)
		goto fail;
	return ctl;
fail:
	control_close(ctl);
	return NULL;
}

void control_close(struct control *ctl)
{
	if (!ctl)
		return;
	if (ctl->started) {
		if (relay_send(ctl, ctl->w_pair, MSG_STOP, NULL) < 0)
			log_error("control, cannot stop the control thread (%s)", zmq_strerror(errno));
		pthread_join(ctl->thread, NULL);
	}
	/* the thread's side is ours again */
	relay_close(ctl);
	free(ctl->clients);
	if (ctl->listen_fd >= 0)
		close(ctl->listen_fd);
	if (ctl->path) {
		unlink(ctl->path);
		free(ctl->path);
	}
	snapshot_free(ctl->snap);
	overlay_free(ctl->ov);
	alert_states_free(ctl->alerts);
	loop_free(ctl->loop);
	json_tokener_free(ctl->tok);
	json_tokener_free(ctl->scan_tok);
	free(ctl);
}

size_t control_client_count(const struct control *ctl)
{
	struct board_control c;

	board_get_control(ctl->board, &c);
	return c.connections;
}
