/*
 * Control socket connections. Every descriptor is non-blocking; a connection
 * owns an input buffer capped at one request line and an output buffer that,
 * past HEARTH_CONTROL_OUTBUF, stops us reading more of its requests until the
 * peer drains it. So neither an idle, a half-written nor a non-reading peer
 * can hold up the loop or grow memory without bound.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#include "hearth/codec.h"
#include "hearth/commands.h"
#include "hearth/config.h"
#include "hearth/control.h"
#include "hearth/job.h"
#include "hearth/limits.h"
#include "hearth/log.h"
#include "hearth/loop.h"
#include "hearth/server.h"
#include "hearth/units.h"

#define PEER_GROUPS_MAX 64
#define READ_CHUNK      65536
#define TURN_BUDGET_US  2000    /* then other peers get their turn */

struct client {
	struct control *ctl;
	int fd;
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
	struct job *job;                /* a request answered in slices: later lines wait for it */
	struct json_object *job_ans;
	int job_timer;
};

struct control {
	struct server *srv;
	int listen_fd;
	char *path;                     /* set when we bound it and must unlink it */
	struct client **clients;
	size_t n, cap;
	gid_t *admin_gids;
	size_t nadmin;
	struct json_tokener *tok;
};

static void client_close(struct client *c);
static void client_update_events(struct client *c);

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
	const struct control *ctl = c->ctl;

	if (c->uid == 0 || c->uid == geteuid())
		return 1;
	for (size_t i = 0; i < ctl->nadmin; i++) {
		if (c->gid == ctl->admin_gids[i])
			return 1;
		for (int j = 0; j < c->ngroups; j++)
			if (c->groups[j] == ctl->admin_gids[i])
				return 1;
	}
	return 0;
}

static void append_answer(struct client *c, struct json_object *ans)
{
	const char *text = json_object_to_json_string_ext(ans, JSON_C_TO_STRING_PLAIN |
								JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!text) {
		static const char oom[] =
			"{\"ok\":false,\"error\":{\"code\":\"store_error\",\"message\":\"out of memory\"}}";
		text = oom;
	}
	wbuf_put(&c->out, text, strlen(text));
	wbuf_u8(&c->out, '\n');
}

static struct json_object *error_answer(const struct herr *err)
{
	struct json_object *ans = json_object_new_object(), *e = json_object_new_object();

	json_object_object_add(ans, "ok", json_object_new_boolean(0));
	json_object_object_add(e, "code", json_object_new_string(herr_name(err->code)));
	json_object_object_add(e, "message", json_object_new_string(err->msg));
	json_object_object_add(ans, "error", e);
	return ans;
}

/* One request line to its answer: parse, find the command, check the peer, run it. */
struct json_object *control_job_answer(struct server *srv, struct json_object *ans, int rc,
				       const struct herr *err)
{
	if (rc == 0)
		return ans;
	json_object_put(ans);
	srv->counters.control_errors++;
	return error_answer(err);
}

/* A job with nobody to wait for it (the fuzzer): its slices, one after another. */
static struct json_object *run_job(struct server *srv, struct job *job, struct json_object *ans)
{
	struct herr err = { 0 };
	int rc;

	while ((rc = job->step(job, ans, &err)) == 1)
		;
	job->free(job);
	return control_job_answer(srv, ans, rc, &err);
}

struct json_object *control_answer(struct server *srv, struct json_tokener *tok, const char *line,
				   size_t len, const struct control_peer *peer, struct job **later)
{
	struct json_object *req, *cmd, *ans = NULL;
	const struct command *command;
	struct herr err = { 0 };

	srv->counters.control_requests++;
	json_tokener_reset(tok);
	req = json_tokener_parse_ex(tok, line, (int)len);
	if (!req || json_tokener_get_parse_end(tok) < len) {
		size_t end = json_tokener_get_parse_end(tok);
		int trailing = req != NULL;
		while (trailing && end < len && (line[end] == ' ' || line[end] == '\t' || line[end] == '\r'))
			end++;
		if (!req || end < len) {
			herr_set(&err, HERR_BAD_REQUEST, "not valid JSON: %s",
				 req ? "text after the request"
				     : json_tokener_error_desc(json_tokener_get_error(tok)));
			goto out;
		}
	}
	if (!json_object_is_type(req, json_type_object) ||
	    !json_object_object_get_ex(req, "cmd", &cmd) || !json_object_is_type(cmd, json_type_string)) {
		herr_set(&err, HERR_BAD_REQUEST, "a request is an object with a string \"cmd\"");
		goto out;
	}
	command = command_find(json_object_get_string(cmd));
	if (!command) {
		herr_set(&err, HERR_UNKNOWN_COMMAND, "unknown command '%.60s'", json_object_get_string(cmd));
		goto out;
	}
	if ((command->flags & CMD_CHANGES_STATE) && !peer->admin) {
		srv->counters.control_forbidden++;
		log_warning("control, refused '%s' to uid %d pid %d (not an admin)", command->name,
			    (int)peer->uid, (int)peer->pid);
		herr_set(&err, HERR_FORBIDDEN, "'%s' changes state: only root, the daemon's user "
			 "and members of control.admin_groups may use it", command->name);
		goto out;
	}
	ans = json_object_new_object();
	json_object_object_add(ans, "ok", json_object_new_boolean(1));
	if (!command->fn) {
		struct job *job = command->start(srv, req, &err);
		if (!job) {
			json_object_put(ans);
			ans = NULL;
		} else if (later) {
			*later = job;
			json_object_put(ans);
			ans = NULL;
			json_object_put(req);
			return NULL;
		} else {
			ans = run_job(srv, job, ans);
		}
	} else if (command->fn(srv, req, ans, &err) < 0) {
		json_object_put(ans);
		ans = NULL;
	}
out:
	if (!ans) {
		srv->counters.control_errors++;
		ans = error_answer(&err);
	}
	json_object_put(req);
	return ans;
}

static void on_job_slice(struct loop *loop, void *ctx);

/* Runs one request line and queues its answer, or starts its job. */
static void handle_line(struct client *c, const char *line, size_t len)
{
	struct control_peer peer = { .uid = c->uid, .pid = c->pid, .admin = client_is_admin(c) };
	struct job *job = NULL;
	struct json_object *ans = control_answer(c->ctl->srv, c->ctl->tok, line, len, &peer, &job);

	if (job) {
		c->job = job;
		c->job_ans = json_object_new_object();
		json_object_object_add(c->job_ans, "ok", json_object_new_boolean(1));
		c->job_timer = loop_timer_add(c->ctl->srv->loop, 0, on_job_slice, c);
		return;
	}
	append_answer(c, ans);
	json_object_put(ans);
}

static void job_end(struct client *c)
{
	if (c->job_timer)
		loop_timer_cancel(c->ctl->srv->loop, c->job_timer);
	c->job_timer = 0;
	if (c->job)
		c->job->free(c->job);
	c->job = NULL;
	json_object_put(c->job_ans);
	c->job_ans = NULL;
}

static void process_input(struct client *c);
static void client_flush(struct client *c);
static int has_line(const struct client *c);

/* Slices of the job until their budget is spent; its answer, then the lines after it. */
static void on_job_slice(struct loop *loop, void *ctx)
{
	struct client *c = ctx;
	struct herr err = { 0 };
	int64_t until = mono_now_us() + JOB_SLICE_US;
	int rc;

	c->job_timer = 0;
	while ((rc = c->job->step(c->job, c->job_ans, &err)) == 1 && mono_now_us() < until)
		;
	if (rc == 1) {
		c->job_timer = loop_timer_add(loop, 0, on_job_slice, c);
		return;
	}
	struct json_object *ans = control_job_answer(c->ctl->srv, c->job_ans, rc, &err);
	c->job_ans = NULL;
	append_answer(c, ans);
	json_object_put(ans);
	job_end(c);
	process_input(c);
	client_flush(c);
	if (c->closing && !has_line(c) && c->outoff == c->out.len) {
		client_close(c);
		return;
	}
	client_update_events(c);
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

/* Answers every complete line in the input buffer (until backlogged). */
static void on_resume(struct loop *loop, void *ctx);

static int has_line(const struct client *c)
{
	return c->inlen && memchr(c->in, '\n', c->inlen) != NULL;
}

/*
 * Answers complete lines until this peer has had its turn (TURN_BUDGET_US):
 * a peer pipelining large ingests must not hold up a `status` on another
 * connection. What is left is served on the next turn of the loop.
 */
static void process_input(struct client *c)
{
	size_t start = 0;
	int64_t until = mono_now_us() + TURN_BUDGET_US;

	while (start < c->inlen && !c->job && !backlogged(c) && (start == 0 || mono_now_us() < until)) {
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
			struct json_object *ans = error_answer(&err);
			append_answer(c, ans);
			json_object_put(ans);
		} else {
			handle_line(c, c->in + start, len);
		}
		start += len + 1;
	}
	memmove(c->in, c->in + start, c->inlen - start);
	c->inlen -= start;
	/* An unfinished line past the limit can never be served: answer now, skip the rest. */
	if (c->inlen > HEARTH_CONTROL_LINE && !c->discarding) {
		struct herr err;
		herr_set(&err, HERR_TOO_LARGE, "request line longer than %u bytes", HEARTH_CONTROL_LINE);
		struct json_object *ans = error_answer(&err);
		append_answer(c, ans);
		json_object_put(ans);
		c->discarding = 1;
		c->inlen = 0;
	} else if (c->discarding && !memchr(c->in, '\n', c->inlen)) {
		c->inlen = 0;
	}
	if (has_line(c) && !c->job && !backlogged(c) && !c->resume_timer)
		c->resume_timer = loop_timer_add(c->ctl->srv->loop, 0, on_resume, c);
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

static void on_client(struct loop *loop, short revents, void *ctx)
{
	struct client *c = ctx;

	(void)loop;
	if (revents & ZMQ_POLLIN) {
		if (client_read(c) < 0) {
			/* the peer closed: still deliver answers to what it sent */
			c->closing = 1;
		}
	}
	if (c->inlen && !backlogged(c))
		process_input(c);
	client_flush(c);
	/* a peer that closed its side still gets the answers to every line it sent */
	if ((c->closing && !c->job && !has_line(c) && c->outoff == c->out.len) || (revents & ZMQ_POLLERR)) {
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
	if (c->closing && !c->job && !has_line(c) && c->outoff == c->out.len) {
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
	loop_set_events(c->ctl->srv->loop, NULL, c->fd, events);
}

static void client_close(struct client *c)
{
	struct control *ctl = c->ctl;

	for (size_t i = 0; i < ctl->n; i++)
		if (ctl->clients[i] == c) {
			ctl->clients[i] = ctl->clients[--ctl->n];
			break;
		}
	if (c->resume_timer)
		loop_timer_cancel(ctl->srv->loop, c->resume_timer);
	job_end(c);
	loop_unwatch(ctl->srv->loop, NULL, c->fd);
	close(c->fd);
	free(c->in);
	wbuf_free(&c->out);
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

void control_reload(struct control *ctl)
{
	const struct config *cfg = ctl->srv->cfg;

	free(ctl->admin_gids);
	ctl->nadmin = 0;
	ctl->admin_gids = calloc(cfg->nadmin_groups ? cfg->nadmin_groups : 1, sizeof(gid_t));
	for (size_t i = 0; ctl->admin_gids && i < cfg->nadmin_groups; i++) {
		struct group *g = getgrnam(cfg->admin_groups[i]);
		if (!g) {
			log_warning("control, admin group '%s' does not exist; ignoring it",
				    cfg->admin_groups[i]);
			continue;
		}
		ctl->admin_gids[ctl->nadmin++] = g->gr_gid;
	}
}

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

	if (!ctl || !(ctl->tok = json_tokener_new_ex(64))) {
		herr_set(err, HERR_NOMEM, "out of memory");
		free(ctl);
		return NULL;
	}
	json_tokener_set_flags(ctl->tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	ctl->srv = srv;
	ctl->listen_fd = -1;
	if (listen_fd >= 0) {
		ctl->listen_fd = listen_fd;
		set_nonblocking(listen_fd);
	} else if (bind_path(ctl, srv->cfg->control_path, srv->cfg->control_mode, err) < 0) {
		control_close(ctl);
		return NULL;
	}
	control_reload(ctl);
	if (loop_watch(srv->loop, NULL, ctl->listen_fd, ZMQ_POLLIN, on_accept, ctl) < 0) {
		herr_set(err, HERR_NOMEM, "out of memory");
		control_close(ctl);
		return NULL;
	}
	return ctl;
}

void control_close(struct control *ctl)
{
	if (!ctl)
		return;
	while (ctl->n > 0) {
		struct client *c = ctl->clients[0];
		client_flush(c);
		client_close(c);
	}
	free(ctl->clients);
	if (ctl->listen_fd >= 0) {
		loop_unwatch(ctl->srv->loop, NULL, ctl->listen_fd);
		close(ctl->listen_fd);
	}
	if (ctl->path) {
		unlink(ctl->path);
		free(ctl->path);
	}
	free(ctl->admin_gids);
	json_tokener_free(ctl->tok);
	free(ctl);
}

size_t control_client_count(const struct control *ctl)
{
	return ctl->n;
}
