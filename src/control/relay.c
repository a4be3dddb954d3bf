/*
 * The writer's end of the control queue (control_impl.h): it runs the
 * requests the control thread forwards, with the same handlers as ever (jobs
 * in slices, on the writer's loop), and sends back their answers; it also
 * sends the reader's notes of pending state (hearth/overlay.h) and, after a
 * reload, a configuration snapshot of the control thread's own.
 */
#include <errno.h>
#include <grp.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "control_impl.h"
#include "hearth/commands.h"
#include "hearth/config.h"
#include "hearth/job.h"
#include "hearth/log.h"
#include "hearth/loop.h"
#include "hearth/overlay.h"
#include "hearth/rules.h"
#include "hearth/server.h"
#include "hearth/timeline.h"
#include "hearth/units.h"

int relay_send(struct control *ctl, void *pair, enum msg_kind kind, void *ptr)
{
	struct msg m = { kind, ptr };

	atomic_fetch_add_explicit(&ctl->handoffs, 1, memory_order_release);
	/* no high-water mark: this never waits */
	return zmq_send(pair, &m, sizeof(m), 0) == (int)sizeof(m) ? 0 : -1;
}

int relay_recv(struct control *ctl, void *pair, struct msg *m)
{
	int n = zmq_recv(pair, m, sizeof(*m), ZMQ_DONTWAIT);

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 1 : -1;
	(void)atomic_load_explicit(&ctl->handoffs, memory_order_acquire);
	if (n != (int)sizeof(*m)) {
		errno = EPROTO;
		return -1;
	}
	return 0;
}

/* ---- configuration snapshots ----------------------------------------------------- */

struct snapshot *snapshot_new(struct server *srv)
{
	struct snapshot *s = calloc(1, sizeof(*s));
	const struct config *cfg = srv->cfg;
	char errors[512];

	if (!s || !(s->admin_gids = calloc(cfg->nadmin_groups ? cfg->nadmin_groups : 1, sizeof(gid_t))))
		goto fail;
	s->cfg = config_ref(srv->cfg);
	/* compiled again, not shared: the writer's rules keep live counters */
	if (!(s->rs = ruleset_compile(s->cfg, errors, sizeof(errors))))
		goto fail;
	for (size_t i = 0; i < cfg->nadmin_groups; i++) {
		struct group *g = getgrnam(cfg->admin_groups[i]);
		if (!g) {
			log_warning("control, admin group '%s' does not exist; ignoring it",
				    cfg->admin_groups[i]);
			continue;
		}
		s->admin_gids[s->nadmin++] = g->gr_gid;
	}
	return s;
fail:
	snapshot_free(s);
	return NULL;
}

void snapshot_free(struct snapshot *s)
{
	if (!s)
		return;
	ruleset_free(s->rs);
	config_free(s->cfg);
	free(s->admin_gids);
	free(s);
}

void msg_drop(struct msg *m)
{
	struct fwd *f = m->ptr;

	switch (m->kind) {
	case MSG_REQUEST:
	case MSG_ANSWER:
		json_object_put(f->req);
		json_object_put(f->ans);
		free(f);
		break;
	case MSG_NOTE: overlay_note_free(m->ptr); break;
	case MSG_SNAPSHOT: snapshot_free(m->ptr); break;
	case MSG_STOP: break;
	}
}

void control_reload(struct control *ctl)
{
	struct snapshot *s = snapshot_new(ctl->srv);

	if (!s) {
		log_error("control, out of memory: queries keep the previous configuration");
		return;
	}
	if (relay_send(ctl, ctl->w_pair, MSG_SNAPSHOT, s) < 0) {
		log_error("control, cannot hand the configuration over (%s)", zmq_strerror(errno));
		snapshot_free(s);
	}
}

/* ---- forwarded requests ------------------------------------------------------------ */

static void answer(struct control *ctl, struct fwd *f)
{
	/* reads after this answer see what the request changed (a clock move, cases rebuilt) */
	timeline_publish_restated(ctl->srv->tl);
	control_post_status(ctl->srv);
	json_object_put(f->req);
	f->req = NULL;
	if (relay_send(ctl, ctl->w_pair, MSG_ANSWER, f) < 0) {
		log_error("control, an answer is lost (%s)", zmq_strerror(errno));
		json_object_put(f->ans);
		free(f);
	}
}

static void unlink_job(struct control *ctl, struct fwd *f)
{
	for (struct fwd **p = &ctl->jobs; *p; p = &(*p)->next)
		if (*p == f) {
			*p = f->next;
			break;
		}
}

static void on_job_slice(struct loop *loop, void *vctx)
{
	struct fwd *f = vctx;
	struct control *ctl = f->ctl;
	struct herr err = { 0 };
	int64_t until = mono_now_us() + JOB_SLICE_US;
	int rc;

	f->job_timer = 0;
	while ((rc = f->job->step(f->job, f->ans, &err)) == 1 && mono_now_us() < until)
		;
	if (rc == 1) {
		f->job_timer = loop_timer_add(loop, 0, on_job_slice, f);
		return;
	}
	f->job->free(f->job);
	f->job = NULL;
	unlink_job(ctl, f);
	f->ans = rc == 0 ? f->ans : (json_object_put(f->ans), error_answer(&err));
	answer(ctl, f);
}

static void run(struct control *ctl, struct fwd *f)
{
	struct server *srv = ctl->srv;
	struct herr err = { 0 };

	f->ctl = ctl;
	f->ans = json_object_new_object();
	json_object_object_add(f->ans, "ok", json_object_new_boolean(1));
	if (f->cmd->fn) {
		if (f->cmd->fn(srv, f->req, f->ans, &err) < 0) {
			json_object_put(f->ans);
			f->ans = error_answer(&err);
		}
	} else if (!(f->job = f->cmd->start(srv, f->req, &err))) {
		json_object_put(f->ans);
		f->ans = error_answer(&err);
	} else {
		/* later requests of its connection wait for it on the control thread */
		f->next = ctl->jobs;
		ctl->jobs = f;
		f->job_timer = loop_timer_add(srv->loop, 0, on_job_slice, f);
		return;
	}
	answer(ctl, f);
}

static void on_requests(struct loop *loop, short revents, void *vctx)
{
	struct control *ctl = vctx;
	struct msg m;
	int rc;

	(void)loop;
	if (!(revents & ZMQ_POLLIN))
		return;
	while ((rc = relay_recv(ctl, ctl->w_pair, &m)) == 0) {
		if (m.kind == MSG_REQUEST && m.ptr)
			run(ctl, m.ptr);
		else
			msg_drop(&m);
	}
	if (rc < 0)
		log_error("control, bad message from the control thread (%s)", zmq_strerror(errno));
}

/* The timeline's notes for the reader (timeline_set_sink). */
static void send_note(struct overlay_note *note, void *vctx)
{
	struct control *ctl = vctx;

	if (relay_send(ctl, ctl->w_pair, MSG_NOTE, note) < 0) {
		log_error("control, a note for the readers is lost (%s)", zmq_strerror(errno));
		overlay_note_free(note);
	}
}

static void *open_pair_end(void *zctx)
{
	void *s = zmq_socket(zctx, ZMQ_PAIR);
	int zero = 0;

	if (s && (zmq_setsockopt(s, ZMQ_SNDHWM, &zero, sizeof(zero)) < 0 ||
		  zmq_setsockopt(s, ZMQ_RCVHWM, &zero, sizeof(zero)) < 0 ||
		  zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero)) < 0)) {
		zmq_close(s);
		s = NULL;
	}
	return s;
}

int relay_open(struct control *ctl, struct herr *err)
{
	char endpoint[64];

	snprintf(endpoint, sizeof(endpoint), "inproc://hearth-control-%p", (void *)ctl);
	ctl->w_pair = open_pair_end(ctl->srv->zctx);
	ctl->t_pair = open_pair_end(ctl->srv->zctx);
	if (!ctl->w_pair || !ctl->t_pair || zmq_bind(ctl->w_pair, endpoint) < 0 ||
	    zmq_connect(ctl->t_pair, endpoint) < 0)
		return herr_set(err, HERR_IO, "control, cannot create the queue (%s)", zmq_strerror(errno));
	if (loop_watch(ctl->srv->loop, ctl->w_pair, -1, ZMQ_POLLIN, on_requests, ctl) < 0)
		return herr_set(err, HERR_NOMEM, "out of memory");
	timeline_set_sink(ctl->srv->tl, send_note, ctl);
	return 0;
}

/* After the control thread has stopped: what is left on the writer's side. */
void relay_close(struct control *ctl)
{
	struct msg m;

	if (ctl->srv->tl)
		timeline_set_sink(ctl->srv->tl, NULL, NULL);
	if (ctl->w_pair)
		loop_unwatch(ctl->srv->loop, ctl->w_pair, -1);
	while (ctl->jobs) {
		struct fwd *f = ctl->jobs;
		ctl->jobs = f->next;
		if (f->job_timer)
			loop_timer_cancel(ctl->srv->loop, f->job_timer);
		f->job->free(f->job);
		struct msg jm = { MSG_ANSWER, f };
		msg_drop(&jm);
	}
	while (ctl->w_pair && relay_recv(ctl, ctl->w_pair, &m) == 0)
		msg_drop(&m);
	while (ctl->t_pair && relay_recv(ctl, ctl->t_pair, &m) == 0)
		msg_drop(&m);
	if (ctl->w_pair)
		zmq_close(ctl->w_pair);
	if (ctl->t_pair)
		zmq_close(ctl->t_pair);
	ctl->w_pair = ctl->t_pair = NULL;
}
