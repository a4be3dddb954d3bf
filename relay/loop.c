/*
 * The relay's event loop: one curl_multi_poll() over the HTTP transfers, the
 * SUB socket's notification fd and a signalfd. Each turn reads the source,
 * lets every target start what it may, and collects finished transfers; the
 * poll sleeps until the next target deadline (backoff, rate, group_wait).
 * The only blocking calls are the control-socket requests to the local
 * hearthd (status, replay), as for hearthctl watch.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <zmq.h>

#include "hearth/log.h"
#include "hearth/notify.h"
#include "hearth/units.h"
#include "loop.h"
#include "runtime.h"

#define POLL_MAX_MS 1000

int relay_targets_build(struct relay *r, struct relay_config *cfg, struct target ***out, struct herr *err)
{
	struct target **ts = calloc(cfg->ntargets ? cfg->ntargets : 1, sizeof(*ts));

	if (!ts)
		return herr_set(err, HERR_NOMEM, "out of memory");
	for (size_t i = 0; i < cfg->ntargets; i++) {
		const struct target_conf *tc = &cfg->targets[i];
		for (size_t j = 0; j < r->ntargets && !ts[i]; j++)
			if (r->targets[j] && strcmp(r->targets[j]->conf->name, tc->name) == 0)
				ts[i] = r->targets[j];          /* kept: queue, seq, request in flight */
		if (ts[i])
			continue;
		if (!(ts[i] = target_new(tc, cfg->state_dir, err))) {
			for (size_t k = 0; k < i; k++) {
				int kept = 0;
				for (size_t j = 0; j < r->ntargets; j++)
					kept |= r->targets[j] == ts[k];
				if (!kept)
					target_free(ts[k], NULL);
			}
			free(ts);
			return -1;
		}
		if (r->synced)
			target_begin(ts[i], r->last, cfg->state_dir);
	}
	*out = ts;
	return 0;
}

/*
 * SIGHUP: a new config replaces the targets; a target that keeps its name
 * keeps its queue and progress. A bad file keeps the old config running.
 * The source and state directory are read once at start.
 */
static void reload(struct relay *r, int64_t now)
{
	struct relay_config *cfg;
	struct target **ts = NULL;
	struct herr err;
	int nerrors = 0;

	notify_reloading();
	if (!(cfg = relay_config_load(r->cfg->path, &nerrors))) {
		log_error("config, reload of '%s' failed with %d error(s); keeping the old one", r->cfg->path,
			  nerrors);
		goto out;
	}
	if (strcmp(cfg->publish, r->cfg->publish) || strcmp(cfg->control, r->cfg->control) ||
	    strcmp(cfg->state_dir, r->cfg->state_dir))
		log_warning("config, source and state take effect at the next start only");
	free(cfg->publish);
	free(cfg->control);
	free(cfg->state_dir);
	cfg->publish = strdup(r->cfg->publish);
	cfg->control = strdup(r->cfg->control);
	cfg->state_dir = strdup(r->cfg->state_dir);
	if (!cfg->publish || !cfg->control || !cfg->state_dir ||
	    relay_targets_build(r, cfg, &ts, &err) < 0) {
		log_error("config, reload failed (%s); keeping the old one", cfg->publish ? err.msg : "out of memory");
		relay_config_free(cfg);
		goto out;
	}
	for (size_t j = 0; j < r->ntargets; j++) {
		int kept = 0;
		for (size_t i = 0; i < cfg->ntargets; i++)
			kept |= ts[i] == r->targets[j];
		if (!kept) {
			target_save(r->targets[j], r->cfg->state_dir);
			target_free(r->targets[j], r->multi);
		}
	}
	uint64_t start = r->last;
	for (size_t i = 0; i < cfg->ntargets; i++) {
		ts[i]->conf = &cfg->targets[i];
		if (ts[i]->seen < start)
			start = ts[i]->seen;
	}
	free(r->targets);
	r->targets = ts;
	r->ntargets = cfg->ntargets;
	relay_config_free(r->cfg);
	r->cfg = cfg;
	log_set_level((enum log_level)cfg->log_level);
	/* a target added with older progress catches up from the outbox */
	if (r->synced && start < r->last) {
		uint64_t upto = r->last + 1;
		r->last = start;
		source_fill(r, upto, now);
	}
	log_info("config, reloaded '%s' (%zu targets)", cfg->path, cfg->ntargets);
out:
	notify_ready();
}

/*
 * A target whose queue overflowed stopped taking alerts at its `seen`; once
 * it has room again, replay what it missed (the others skip what they have).
 */
static void catch_up(struct relay *r, int64_t now)
{
	uint64_t behind = r->last;

	for (size_t i = 0; i < r->ntargets; i++)
		if (!r->targets[i]->overflow && r->targets[i]->seen < behind)
			behind = r->targets[i]->seen;
	if (behind < r->last && now >= r->next_catch_up) {
		uint64_t upto = r->last + 1;
		r->last = behind;
		if (source_fill(r, upto, now) < 0)
			r->next_catch_up = now + 1000;
	}
}

static int collect(struct relay *r, int64_t now)
{
	CURLMsg *m;
	int left, done = 0;

	while ((m = curl_multi_info_read(r->multi, &left))) {
		struct target *t = NULL;
		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
		if (t)
			target_done(t, r->multi, m->data.result, r->cfg->state_dir, now);
		done++;
	}
	return done;
}

static int inflight(const struct relay *r)
{
	for (size_t i = 0; i < r->ntargets; i++)
		if (target_busy(r->targets[i]))
			return 1;
	return 0;
}

static int open_signals(sigset_t *mask)
{
	sigemptyset(mask);
	sigaddset(mask, SIGTERM);
	sigaddset(mask, SIGINT);
	sigaddset(mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, mask, NULL) < 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, mask, SFD_NONBLOCK | SFD_CLOEXEC);
}

int relay_run(struct relay *r)
{
	sigset_t mask;
	int sfd = open_signals(&mask), zfd = -1, reload_wanted = 0, running = 0, rc = 0;
	size_t zlen = sizeof(zfd);
	int64_t stop_deadline = 0, next_save = 0;
	int64_t wd = notify_watchdog_interval_ms(), next_wd = 0;

	if (sfd < 0) {
		log_error("relay, cannot open a signalfd (%s)", strerror(errno));
		return -1;
	}
	if (zmq_getsockopt(source_socket(r), ZMQ_FD, &zfd, &zlen) < 0) {
		log_error("relay, cannot get the SUB socket's fd (%s)", zmq_strerror(errno));
		close(sfd);
		return -1;
	}
	source_sync(r, mono_now_ms());
	notify_ready();
	for (;;) {
		int64_t now = mono_now_ms(), wake = now + POLL_MAX_MS;
		int more = 0;

		if (reload_wanted && !r->stopping) {
			reload_wanted = 0;
			reload(r, now);
		}
		if (!r->stopping) {
			if (!r->synced)
				source_sync(r, now);
			if (r->synced)
				catch_up(r, now);
			/* drained even before the sync (and then dropped: the sync replays
			 * them), since the SUB's fd only signals again once it is read */
			more = source_drain(r, now);
			for (size_t i = 0; i < r->ntargets; i++)
				target_step(r->targets[i], r->multi, now, &wake);
		} else if (!inflight(r) || now >= stop_deadline) {
			break;
		}
		CURLMcode mc = curl_multi_perform(r->multi, &running);
		if (mc != CURLM_OK) {
			log_error("relay, the HTTP engine failed (%s)", curl_multi_strerror(mc));
			rc = -1;
			break;
		}
		/* a finished transfer may let its target start the next one at once */
		if (collect(r, mono_now_ms()) > 0)
			more = 1;
		if (now >= next_save) {
			/* progress made by filtering alone is saved lazily */
			unsigned long long delivered = 0, queued = 0, held = 0, flaps = 0;
			for (size_t i = 0; i < r->ntargets; i++) {
				target_save(r->targets[i], r->cfg->state_dir);
				delivered += r->targets[i]->delivered;
				queued += r->targets[i]->qlen;
				held += r->targets[i]->nheld;
				flaps += r->targets[i]->flaps;
			}
			notify_status("seq %llu, %zu targets, %llu delivered, %llu queued (%llu held), "
				      "%llu flaps dropped", (unsigned long long)r->last, r->ntargets, delivered,
				      queued, held, flaps);
			next_save = now + 1000;
		}
		if (wd > 0 && now >= next_wd) {
			notify_watchdog();
			next_wd = now + wd;
		}
		/* stopping: the source is no longer read, so it is not watched either */
		struct curl_waitfd extra[2] = {
			{ .fd = sfd, .events = CURL_WAIT_POLLIN },
			{ .fd = zfd, .events = CURL_WAIT_POLLIN },
		};
		int64_t timeout = more ? 0 : wake - mono_now_ms();
		if (timeout < 0)
			timeout = 0;
		if (r->stopping && timeout > 100)
			timeout = 100;
		mc = curl_multi_poll(r->multi, extra, r->stopping ? 1 : 2, (int)timeout, NULL);
		if (mc != CURLM_OK) {
			log_error("relay, waiting for events failed (%s)", curl_multi_strerror(mc));
			rc = -1;
			break;
		}
		struct signalfd_siginfo si;
		while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			if (si.ssi_signo == SIGHUP) {
				reload_wanted = 1;
			} else if (!r->stopping) {
				log_info("relay, stopping on signal %u; finishing the deliveries in hand", si.ssi_signo);
				notify_stopping();
				r->stopping = 1;
				stop_deadline = mono_now_ms() + RELAY_STOP_WAIT_MS;
			}
		}
	}
	for (size_t i = 0; i < r->ntargets; i++) {
		struct target *t = r->targets[i];
		target_save(t, r->cfg->state_dir);
		log_info("relay, target '%s': %llu delivered, %llu skipped, %llu retried, %llu flaps dropped, "
			 "%zu held for the next start", t->conf->name, (unsigned long long)t->delivered,
			 (unsigned long long)t->skipped, (unsigned long long)t->retried,
			 (unsigned long long)t->flaps, t->nheld);
	}
	close(sfd);
	return rc;
}
