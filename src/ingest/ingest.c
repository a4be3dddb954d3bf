/*
 * The ROUTER socket of PROTOCOL.md §3, served by two threads. The parser
 * thread owns the ROUTER: it receives each request, parses and validates it
 * into a struct batch and hands it to the writer (the loop thread) over an
 * inproc PAIR. The writer groups what it finds there (as many requests as are
 * ready, up to a group), commits the group in one durable transaction and
 * hands every request back; only then does the parser send the reply, with
 * the request's own envelope. Parsing thus runs beside the commit instead of
 * before it. Producers may use REQ (envelope: identity, empty) or DEALER
 * (identity, and whatever frames they put before the payload): the last frame
 * is the payload, everything before it goes back unchanged.
 *
 * Ownership: a request belongs to whichever thread last received its pointer
 * over the pair; nothing else is shared but the two atomics of struct ingest.
 * The sockets are made and closed on the writer thread; from pthread_create
 * to pthread_join the ROUTER and the parser's end of the pair belong to the
 * parser (ZeroMQ lets a socket move between threads across a full barrier,
 * which both calls are).
 */
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "hearth/batch.h"
#include "hearth/config.h"
#include "hearth/curve.h"
#include "hearth/engine.h"
#include "hearth/group_commit.h"
#include "hearth/ingest.h"
#include "hearth/ingest_clock.h"
#include "hearth/limits.h"
#include "hearth/log.h"
#include "hearth/thread.h"
#include "hearth/loop.h"
#include "hearth/notify.h"
#include "hearth/timeline.h"
#include "hearth/units.h"

#define GROUP_MAX_REQUESTS 64
#define GROUP_MAX_EVENTS   4000    /* bounds a loop turn: control waits for at most one group */
/* parsed or committed but not yet answered: one group being committed, the next one ready */
#define INFLIGHT_MAX       (2 * GROUP_MAX_REQUESTS)
#define ENVELOPE_MAX       8

enum owner { OWNER_PARSER = 1, OWNER_WRITER };

struct request {
	zmq_msg_t envelope[ENVELOPE_MAX];
	size_t nenvelope;
	struct batch *batch;
	/*
	 * Set (release) before each handoff and read (acquire) after it. The pair
	 * already orders the two threads, but inside libzmq, which ThreadSanitizer
	 * does not see; this makes the same edge visible to it, and checks the handoff.
	 */
	atomic_int owner;
};

/* What goes over the pair, either way: a fixed-size value, copied. */
enum note_kind {
	NOTE_PARSED,                    /* parser to writer: commit this request */
	NOTE_DONE,                      /* writer to parser: committed (or failed), answer it */
	NOTE_PAUSE, NOTE_RESUME, NOTE_STOP,
	NOTE_FAILED,                    /* parser to writer: the parser thread has given up */
};

struct note {
	enum note_kind kind;
	struct request *req;
};

/* The parser thread's, from pthread_create to pthread_join. */
struct parser {
	void *router, *pair;
	struct json_tokener *tok;
	struct request *spare;          /* allocated, waiting for the next message */
	size_t inflight;                /* handed to the writer, not yet back */
	int paused, stopping;
};

/* The writer's (the loop thread's). */
struct writer {
	void *pair;
	struct request *group[GROUP_MAX_REQUESTS];
	struct batch *batches[GROUP_MAX_REQUESTS];
	int paused;
	struct ingest_stats stats;      /* counted here only: read by metrics on this thread */
};

struct ingest {
	/* the writer's: the parser never touches them */
	struct loop *loop;
	const struct group_committer *gc;
	struct engine *engine;
	struct parser p;
	struct writer w;
	pthread_t thread;
	int started;
	/*
	 * The parser validates "ts not beyond now + max_future" itself rather than
	 * leaving that check to the writer: validation stays in one place
	 * (batch_parse_frame) and the writer gets finished batches. A request is
	 * checked against the clock of when it was parsed, which is when it was
	 * received as before.
	 */
	const struct ingest_clock *clock;
};

static void request_free(struct request *req)
{
	if (!req)
		return;
	for (size_t i = 0; i < req->nenvelope; i++)
		zmq_msg_close(&req->envelope[i]);
	batch_free(req->batch);
	free(req);
}

/* The request goes to the other thread; on failure it stays the caller's. */
static int send_note(void *pair, enum note_kind kind, struct request *req, enum owner to)
{
	struct note note = { kind, req };

	if (req)
		atomic_store_explicit(&req->owner, to, memory_order_release);
	/* the pair has no high-water mark (INFLIGHT_MAX bounds it): this never waits */
	return zmq_send(pair, &note, sizeof(note), 0) == (int)sizeof(note) ? 0 : -1;
}

/* 0 a note, 1 none waiting, -1 error. */
static int recv_note(void *pair, struct note *note, enum owner me)
{
	int n = zmq_recv(pair, note, sizeof(*note), ZMQ_DONTWAIT);

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 1 : -1;
	if (n != (int)sizeof(*note)) {
		errno = EPROTO;
		return -1;
	}
	if (note->req && atomic_load_explicit(&note->req->owner, memory_order_acquire) != (int)me) {
		errno = EPROTO;
		return -1;
	}
	return 0;
}

/* ---- the parser thread ---------------------------------------------------------- */

/* Receives one whole message; 0 ok, 1 nothing waiting, -1 error. */
static int receive_request(struct ingest *in, struct request *req)
{
	zmq_msg_t frame, payload;
	int more, first = 1, have_payload = 0;

	req->nenvelope = 0;
	req->batch = NULL;
	do {
		zmq_msg_init(&frame);
		if (zmq_msg_recv(&frame, in->p.router, first ? ZMQ_DONTWAIT : 0) < 0) {
			int e = errno;
			zmq_msg_close(&frame);
			if (first && e == EAGAIN)
				return 1;
			goto fail;
		}
		first = 0;
		more = zmq_msg_more(&frame);
		/* the previous candidate payload was an envelope frame after all */
		if (have_payload) {
			if (req->nenvelope < ENVELOPE_MAX)
				req->envelope[req->nenvelope++] = payload;
			else
				zmq_msg_close(&payload);
		}
		payload = frame;
		have_payload = 1;
	} while (more);
	req->batch = batch_new();
	if (!req->batch)
		goto fail;
	batch_parse_frame(req->batch, in->p.tok, zmq_msg_data(&payload), zmq_msg_size(&payload),
			  ingest_clock_now(in->clock), ingest_clock_max_future(in->clock));
	zmq_msg_close(&payload);
	return 0;
fail:
	if (have_payload)
		zmq_msg_close(&payload);
	for (size_t i = 0; i < req->nenvelope; i++)
		zmq_msg_close(&req->envelope[i]);
	req->nenvelope = 0;
	return -1;
}

static void send_reply(struct ingest *in, struct request *req)
{
	struct json_object *reply = batch_reply(req->batch);
	const char *text = reply ? json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN) : NULL;
	int ok = text != NULL;

	for (size_t i = 0; i < req->nenvelope; i++) {
		if (ok && zmq_msg_send(&req->envelope[i], in->p.router, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
			continue; /* sent: the message is now empty */
		ok = 0;
		zmq_msg_close(&req->envelope[i]);
	}
	req->nenvelope = 0;
	/* A peer that went away or stopped reading loses its reply, never the thread. */
	if (ok && zmq_send(in->p.router, text, strlen(text), ZMQ_DONTWAIT) < 0)
		log_debug("ingest, reply dropped (%s)", zmq_strerror(errno));
	json_object_put(reply);
}

/* Answers what the writer has finished and takes its orders; -1 if the pair failed. */
static int parser_take_notes(struct ingest *in)
{
	struct parser *p = &in->p;
	struct note note;
	int rc = 1;

	while (!p->stopping && (rc = recv_note(p->pair, &note, OWNER_PARSER)) == 0) {
		switch (note.kind) {
		case NOTE_DONE:
			send_reply(in, note.req);
			request_free(note.req);
			p->inflight--;
			break;
		case NOTE_PAUSE: p->paused = 1; break;
		case NOTE_RESUME: p->paused = 0; break;
		case NOTE_STOP: p->stopping = 1; break;
		default:
			errno = EPROTO;
			return -1;
		}
	}
	return p->stopping || rc > 0 ? 0 : -1;
}

static int parser_can_take(const struct parser *p)
{
	return !p->paused && !p->stopping && p->inflight < INFLIGHT_MAX;
}

/*
 * Parses and hands over what the ROUTER holds, a group's worth at most so that
 * finished requests are answered in between; -1 if the pair failed.
 */
static int parser_take_requests(struct ingest *in)
{
	struct parser *p = &in->p;

	for (size_t n = 0; n < GROUP_MAX_REQUESTS && parser_can_take(p); n++) {
		if (!p->spare && !(p->spare = calloc(1, sizeof(*p->spare)))) {
			log_warning("ingest, out of memory for a request");
			return 0;
		}
		int rc = receive_request(in, p->spare);
		if (rc == 1)
			return 0;
		if (rc < 0) {
			log_warning("ingest, receiving a request failed (%s)", zmq_strerror(errno));
			return 0;
		}
		if (send_note(p->pair, NOTE_PARSED, p->spare, OWNER_WRITER) < 0)
			return -1; /* still ours: freed with the spare */
		p->spare = NULL;
		p->inflight++;
		if (parser_take_notes(in) < 0)
			return -1;
	}
	return 0;
}

static void *parser_main(void *arg)
{
	struct ingest *in = arg;
	struct parser *p = &in->p;

	thread_setup("hearth-parser", 0, "ingest, the parser thread");
	while (!p->stopping) {
		zmq_pollitem_t items[] = {
			{ .socket = p->pair, .events = ZMQ_POLLIN },
			{ .socket = p->router, .events = parser_can_take(p) ? ZMQ_POLLIN : 0 },
		};
		if (zmq_poll(items, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (parser_take_notes(in) < 0)
			goto fail;
		if ((items[1].revents & ZMQ_POLLIN) && parser_take_requests(in) < 0)
			goto fail;
	}
	return NULL;
fail:
	log_error("ingest, the parser thread stops (%s)", zmq_strerror(errno));
	/* the writer stops the daemon: an ingest that answers nobody must not look alive */
	if (send_note(p->pair, NOTE_FAILED, NULL, OWNER_WRITER) < 0)
		log_error("ingest, cannot tell the writer (%s)", zmq_strerror(errno));
	return NULL;
}

/* ---- the writer (the loop thread) ----------------------------------------------- */

/* The next parsed request, or NULL when none is waiting. */
static struct request *writer_take(struct ingest *in)
{
	struct note note;
	int rc = recv_note(in->w.pair, &note, OWNER_WRITER);

	if (rc == 0 && note.kind == NOTE_PARSED && note.req)
		return note.req;
	if (rc == 0 && note.kind == NOTE_FAILED) {
		log_error("ingest, no parser thread any more: stopping");
		loop_fail(in->loop);
	} else if (rc != 1) {
		log_error("ingest, bad note from the parser thread (%s)", zmq_strerror(errno));
	}
	return NULL;
}

static void writer_count(struct ingest *in, const struct batch *b)
{
	in->w.stats.requests++;
	in->w.stats.events_rejected += b->nrejects;
	if (b->fail.code == HERR_TOO_LARGE)
		in->w.stats.too_large++;
}

static void on_parsed(struct loop *loop, short revents, void *ctx)
{
	struct ingest *in = ctx;
	struct writer *w = &in->w;
	size_t n = 0, events = 0, nbatches = 0;
	struct request *req;

	(void)loop;
	if (!(revents & ZMQ_POLLIN))
		return;
	while (n < GROUP_MAX_REQUESTS && events < GROUP_MAX_EVENTS && (req = writer_take(in))) {
		struct batch *b = req->batch;
		w->group[n++] = req;
		events += b->nevents;
		writer_count(in, b);
		if (b->nevents && b->fail.code == HERR_OK)
			w->batches[nbatches++] = b;
	}
	if (n == 0)
		return;
	w->stats.groups++;
	if (nbatches > 0)
		group_commit(in->gc, w->batches, nbatches);
	for (size_t i = 0; i < n; i++) {
		const struct batch *b = w->group[i]->batch;
		/* after the group's commit: the load's last events are stored and deferred */
		if (b->load_end && b->fail.code == HERR_OK)
			engine_load_end(in->engine);
		if (send_note(w->pair, NOTE_DONE, w->group[i], OWNER_PARSER) < 0) {
			log_error("ingest, a reply is lost (%s)", zmq_strerror(errno));
			request_free(w->group[i]);
		}
	}
}

void ingest_pause(struct ingest *in, int paused)
{
	if (!in || paused == in->w.paused)
		return;
	in->w.paused = paused;
	in->w.stats.pauses += (unsigned long long)paused;
	/* what is already parsed waits too: no commit adds to the backlog meanwhile */
	loop_set_events(in->loop, in->w.pair, -1, paused ? 0 : ZMQ_POLLIN);
	if (send_note(in->w.pair, paused ? NOTE_PAUSE : NOTE_RESUME, NULL, OWNER_PARSER) < 0)
		log_error("ingest, cannot tell the parser thread to %s (%s)",
			  paused ? "pause" : "resume", zmq_strerror(errno));
}

void ingest_get_stats(const struct ingest *in, struct ingest_stats *out)
{
	*out = in->w.stats;
}

/* ---- open and close --------------------------------------------------------------- */

static int open_router(struct ingest *in, const struct config *cfg, void *zctx, struct herr *err)
{
	int64_t maxmsg = HEARTH_BATCH_BYTES;
	int linger = 2000, hwm = 10000;

	in->p.router = zmq_socket(zctx, ZMQ_ROUTER);
	if (!in->p.router ||
	    zmq_setsockopt(in->p.router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg)) < 0 ||
	    zmq_setsockopt(in->p.router, ZMQ_LINGER, &linger, sizeof(linger)) < 0 ||
	    zmq_setsockopt(in->p.router, ZMQ_SNDHWM, &hwm, sizeof(hwm)) < 0 ||
	    zmq_setsockopt(in->p.router, ZMQ_RCVHWM, &hwm, sizeof(hwm)) < 0)
		return herr_set(err, HERR_IO, "ingest, cannot create the ROUTER socket (%s)",
				zmq_strerror(errno));
	if (curve_server_setup(in->p.router, cfg, err) < 0)
		return -1;
	for (size_t i = 0; i < cfg->ningest_listen; i++) {
		/* socket activation: systemd's descriptor serves the first endpoint */
		int fd = i == 0 ? notify_listen_fd("ingest") : -1;
		if (fd >= 0 && zmq_setsockopt(in->p.router, ZMQ_USE_FD, &fd, sizeof(fd)) < 0)
			log_warning("ingest, cannot adopt the passed descriptor (%s)", zmq_strerror(errno));
		if (zmq_bind(in->p.router, cfg->ingest_listen[i]) < 0)
			return herr_set(err, HERR_IO, "ingest, cannot bind '%s' (%s)", cfg->ingest_listen[i],
					zmq_strerror(errno));
	}
	return 0;
}

static void *open_pair_end(void *zctx)
{
	void *s = zmq_socket(zctx, ZMQ_PAIR);
	int zero = 0;

	/* no high-water mark (INFLIGHT_MAX bounds what is queued), and nothing lingers */
	if (s && (zmq_setsockopt(s, ZMQ_SNDHWM, &zero, sizeof(zero)) < 0 ||
		  zmq_setsockopt(s, ZMQ_RCVHWM, &zero, sizeof(zero)) < 0 ||
		  zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero)) < 0)) {
		zmq_close(s);
		s = NULL;
	}
	return s;
}

static int open_pair(struct ingest *in, void *zctx, struct herr *err)
{
	char endpoint[64];

	snprintf(endpoint, sizeof(endpoint), "inproc://hearth-ingest-%p", (void *)in);
	in->w.pair = open_pair_end(zctx);
	in->p.pair = open_pair_end(zctx);
	if (!in->w.pair || !in->p.pair || zmq_bind(in->w.pair, endpoint) < 0 ||
	    zmq_connect(in->p.pair, endpoint) < 0)
		return herr_set(err, HERR_IO, "ingest, cannot create the parser's pair (%s)",
				zmq_strerror(errno));
	if (loop_watch(in->loop, in->w.pair, -1, ZMQ_POLLIN, on_parsed, in) < 0)
		return herr_set(err, HERR_NOMEM, "out of memory");
	return 0;
}

/* Signals belong to the loop's signalfd: the parser thread takes none of them. */
static int start_parser(struct ingest *in, struct herr *err)
{
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	rc = pthread_sigmask(SIG_BLOCK, &all, &old);
	if (rc == 0) {
		rc = pthread_create(&in->thread, NULL, parser_main, in);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	if (rc != 0)
		return herr_set(err, HERR_IO, "ingest, cannot start the parser thread (%s)", strerror(rc));
	in->started = 1;
	return 0;
}

struct ingest *ingest_open(const struct config *cfg, void *zctx, struct loop *loop,
			   const struct ingest_clock *clock, const struct group_committer *gc,
			   struct engine *eng, struct herr *err)
{
	struct ingest *in = calloc(1, sizeof(*in));

	if (!in || !(in->p.tok = batch_tokener_new())) {
		herr_set(err, HERR_NOMEM, "out of memory");
		goto fail;
	}
	in->loop = loop;
	in->gc = gc;
	in->engine = eng;
	in->clock = clock;
	if (open_router(in, cfg, zctx, err) < 0 || open_pair(in, zctx, err) < 0 || start_parser(in, err) < 0)
		goto fail;
	return in;
fail:
	ingest_close(in);
	return NULL;
}

/*
 * Requests still on the pair were parsed but never committed: they are
 * dropped unanswered, as if the stop had come before they were read.
 */
static size_t drain(void *pair, enum owner me)
{
	struct note note;
	size_t n = 0;

	while (pair && recv_note(pair, &note, me) == 0)
		if (note.req) {
			request_free(note.req);
			n++;
		}
	return n;
}

void ingest_close(struct ingest *in)
{
	if (!in)
		return;
	if (in->w.pair)
		loop_unwatch(in->loop, in->w.pair, -1);
	if (in->started) {
		/* every DONE sent before it is answered first: the pair keeps order */
		if (send_note(in->w.pair, NOTE_STOP, NULL, OWNER_PARSER) < 0)
			log_error("ingest, cannot stop the parser thread (%s)", zmq_strerror(errno));
		pthread_join(in->thread, NULL);
	}
	/* the parser's sockets are ours again */
	size_t dropped = drain(in->w.pair, OWNER_WRITER) + drain(in->p.pair, OWNER_PARSER);
	if (dropped)
		log_info("ingest, %zu requests not committed at stop, dropped unanswered", dropped);
	if (in->p.router)
		zmq_close(in->p.router); /* lingers: the last replies still go out */
	if (in->p.pair)
		zmq_close(in->p.pair);
	if (in->w.pair)
		zmq_close(in->w.pair);
	request_free(in->p.spare);
	json_tokener_free(in->p.tok);
	free(in);
}
