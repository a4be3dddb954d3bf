/*
 * The readers' notes (hearth/overlay.h): what the writer holds pending and
 * has not flushed, told to the control thread's overlay after each append,
 * flush, forget and restatement, so that reads on their own transactions
 * see it without waiting for the flush.
 *
 * An append's note names the touched customers and their new time-index
 * entries, no records: the reader folds the log's events itself. It is built
 * on a thread of its own while the writer writes the alert changes and
 * commits: once evaluated, the touched customers stay as they are until the
 * writer takes the note back after the commit (a mutex hands them over and
 * back).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hearth/log.h"
#include "hearth/overlay.h"
#include "hearth/state.h"
#include "hearth/thread.h"
#include "hearth/timeline.h"
#include "pending.h"
#include "type_names.h"

static void send_note(struct timeline *tl, struct overlay_note *n)
{
	if (!n) {
		log_error("store, out of memory telling the readers about pending state");
		return;
	}
	tl->sink(n, tl->sink_ctx);
}

/*
 * One pending customer into n, with its pending entries from log seq from_seq
 * on, and its record when types is set (the writer's, for cust_encode): an
 * append's customers go without, as the reader folds their events from the
 * log itself.
 */
static int note_customer(struct type_names *types, struct overlay_note *n, const struct dirty *d,
			 uint64_t from_seq)
{
	ssize_t ci;

	/* straight into the note: the reader copies it out, off this thread */
	if (types && cust_encode(d->c, types, overlay_note_records(n)) < 0)
		return -1;
	ci = overlay_note_cust(n, d->c->id, d->c->id_len, types != NULL);
	for (size_t j = 0; ci >= 0 && j < d->n; j++)
		if (d->ev[j].seq >= from_seq &&
		    overlay_note_event(n, (size_t)ci, d->ev[j].ts, d->ev[j].seq, d->ev[j].type,
				       d->ev[j].type_len) < 0)
			return -1;
	return ci < 0 ? -1 : 0;
}

/* What an append changed: customers ds[0..n) and their events from log seq from_seq on. */
static struct overlay_note *append_note(struct dirty **ds, size_t n, uint64_t from_seq, uint64_t gen)
{
	struct overlay_note *note = overlay_note_new(OVERLAY_UPDATE, gen);

	for (size_t i = 0; note && i < n; i++)
		if (note_customer(NULL, note, ds[i], from_seq) < 0) {
			overlay_note_free(note);
			note = NULL;
		}
	return note;
}

#define ENCODER_NICE 10

struct note_encoder {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int busy, stop;                 /* under lock: the job is the encoder's; it is to end */
	/* the job: the writer's until busy is set, the encoder's until it drops */
	struct dirty **ds;
	size_t n;
	uint64_t from_seq, gen;
	struct overlay_note *note;
};

static void *encoder_main(void *arg)
{
	struct note_encoder *ne = arg;

	/*
	 * Below queries: the reader thread answering one would otherwise wait for
	 * a time slice behind it, the parser and the writer (customer p99 beside
	 * ingest 6.0 ms instead of 4.8). It has the commit's time to finish in.
	 */
	thread_setup("hearth-notes", ENCODER_NICE, "store, the notes encoder");
	pthread_mutex_lock(&ne->lock);
	for (;;) {
		while (!ne->busy && !ne->stop)
			pthread_cond_wait(&ne->cond, &ne->lock);
		if (!ne->busy)
			break;
		pthread_mutex_unlock(&ne->lock);
		struct overlay_note *note = append_note(ne->ds, ne->n, ne->from_seq, ne->gen);
		pthread_mutex_lock(&ne->lock);
		ne->note = note;
		ne->busy = 0;
		pthread_cond_broadcast(&ne->cond);
	}
	pthread_mutex_unlock(&ne->lock);
	return NULL;
}

/* The note in the making once done (NULL: out of memory); the customers are the writer's again. */
static struct overlay_note *encoder_take(struct timeline *tl)
{
	struct note_encoder *ne = tl->encoder;

	pthread_mutex_lock(&ne->lock);
	while (ne->busy)
		pthread_cond_wait(&ne->cond, &ne->lock);
	pthread_mutex_unlock(&ne->lock);
	tl->encoding = 0;
	return ne->note;
}

static void encoder_free(struct timeline *tl)
{
	struct note_encoder *ne = tl->encoder;

	if (!ne)
		return;
	if (tl->encoding)
		overlay_note_free(encoder_take(tl));
	pthread_mutex_lock(&ne->lock);
	ne->stop = 1;
	pthread_cond_broadcast(&ne->cond);
	pthread_mutex_unlock(&ne->lock);
	pthread_join(ne->thread, NULL);
	pthread_mutex_destroy(&ne->lock);
	pthread_cond_destroy(&ne->cond);
	free(ne);
	tl->encoder = NULL;
}

/* NULL when no thread can be had: notes are then encoded by the writer itself. */
static struct note_encoder *encoder_new(void)
{
	struct note_encoder *ne = calloc(1, sizeof(*ne));

	if (!ne)
		return NULL;
	pthread_mutex_init(&ne->lock, NULL);
	pthread_cond_init(&ne->cond, NULL);
	if (pthread_create(&ne->thread, NULL, encoder_main, ne) != 0) {
		pthread_mutex_destroy(&ne->lock);
		pthread_cond_destroy(&ne->cond);
		free(ne);
		return NULL;
	}
	return ne;
}

void timeline_append_evaluated(struct timeline *tl)
{
	struct note_encoder *ne = tl->encoder;

	if (!tl->sink || !ne || !tl->ntouched || tl->encoding)
		return;
	pthread_mutex_lock(&ne->lock);
	ne->ds = tl->touched_dirty;
	ne->n = tl->ntouched;
	ne->from_seq = tl->append_from_seq;
	ne->gen = ++tl->gen;
	ne->note = NULL;
	ne->busy = 1;
	pthread_cond_broadcast(&ne->cond);
	pthread_mutex_unlock(&ne->lock);
	tl->encoding = 1;
}

void timeline_append_note_drop(struct timeline *tl)
{
	if (tl->encoding)
		overlay_note_free(encoder_take(tl));
}

/*
 * What the append changed, from the encoder when it has it in hand; a
 * customer's pending entries may have been sorted since the append, so they
 * are told apart by seq, not by position.
 */
void timeline_publish_append(struct timeline *tl)
{
	if (tl->encoding)
		send_note(tl, encoder_take(tl));
	else
		send_note(tl, append_note(tl->touched_dirty, tl->ntouched, tl->append_from_seq, ++tl->gen));
}

void timeline_publish_flushed(struct timeline *tl, size_t from, size_t to)
{
	struct overlay_note *note;

	if (!tl->sink || from == to)
		return;
	note = overlay_note_new(OVERLAY_FLUSHED, tl->gen);
	for (size_t i = from; note && i < to; i++)
		if (overlay_note_cust(note, tl->job.custs[i], tl->job.lens[i], 0) < 0) {
			overlay_note_free(note);
			note = NULL;
		}
	send_note(tl, note);
}

void timeline_publish_forget(struct timeline *tl, const char *id, size_t len)
{
	struct overlay_note *note = overlay_note_new(OVERLAY_FORGET, tl->gen);

	if (note && overlay_note_cust(note, id, len, 0) < 0) {
		overlay_note_free(note);
		note = NULL;
	}
	send_note(tl, note);
}

/*
 * Only customers still pending: one flushed meanwhile is in the store as
 * changed, and its FLUSHED note has gone out; an UPDATE after it would leave
 * the reader an entry no later note drops.
 */
void timeline_publish_restated(struct timeline *tl)
{
	const struct strmap_slot *slot;
	struct overlay_note *note;

	if (!tl->sink || tl->restated.count == 0)
		return;
	note = overlay_note_new(OVERLAY_UPDATE, ++tl->gen);
	for (size_t i = 0; note && strmap_next(&tl->restated, &i, &slot);) {
		struct dirty *d = strmap_get(&tl->dirty, slot->key, slot->len);
		if (d && note_customer(store_type_names(tl->st), note, d, UINT64_MAX) < 0) {
			overlay_note_free(note);
			note = NULL;
		}
	}
	strmap_clear(&tl->restated);
	send_note(tl, note);
}

void timeline_set_sink(struct timeline *tl, timeline_sink_fn fn, void *ctx)
{
	const struct strmap_slot *slot;
	struct overlay_note *note;

	tl->sink = fn;
	tl->sink_ctx = ctx;
	if (fn && !tl->encoder && !(tl->encoder = encoder_new()))
		log_warning("store, no thread for the readers' notes: the writer encodes them");
	if (!fn)
		encoder_free(tl);
	if (!fn || tl->dirty.count == 0)
		return;
	note = overlay_note_new(OVERLAY_UPDATE, ++tl->gen);
	for (size_t i = 0; note && strmap_next(&tl->dirty, &i, &slot);)
		if (note_customer(store_type_names(tl->st), note, slot->value, 0) < 0) {
			overlay_note_free(note);
			note = NULL;
		}
	send_note(tl, note);
}

void timeline_notes_end(struct timeline *tl)
{
	encoder_free(tl);
}
