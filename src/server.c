/*
 * What the whole daemon shares: its clock and configuration reloads. A reload
 * swaps in the new configuration only when all of it loads; sockets and the
 * store keep running, and settings that need a restart say so in the log.
 */
#include <stdio.h>
#include <string.h>

#include "hearth/config.h"
#include "hearth/curve.h"
#include "hearth/engine.h"
#include "hearth/rules.h"
#include "hearth/log.h"
#include "hearth/outbox.h"
#include "hearth/server.h"
#include "hearth/timeline.h"
#include "hearth/units.h"

int64_t server_now(const struct server *srv)
{
	return time_now_ms() + srv->clock_offset_ms;
}

void server_publish_clock(struct server *srv)
{
	ingest_clock_publish(&srv->ingest_clock, srv->clock_offset_ms, srv->cfg->max_future_ms);
}

static int lists_differ(char **a, size_t na, char **b, size_t nb)
{
	if (na != nb)
		return 1;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return 1;
	return 0;
}

static void warn_restart_needed(const struct config *old, const struct config *cfg)
{
	if (strcmp(old->store_path, cfg->store_path) != 0)
		log_warning("reload, store.path changed: takes effect at the next start");
	if (lists_differ(old->ingest_listen, old->ningest_listen, cfg->ingest_listen, cfg->ningest_listen))
		log_warning("reload, ingest.listen changed: takes effect at the next start");
	if (lists_differ(old->publish_listen, old->npublish_listen, cfg->publish_listen, cfg->npublish_listen))
		log_warning("reload, publish.listen changed: takes effect at the next start");
	if (strcmp(old->control_path, cfg->control_path) != 0 || old->control_mode != cfg->control_mode)
		log_warning("reload, control.path or mode changed: takes effect at the next start");
}

struct config *server_load_config(const char *path, struct ruleset **rs, char *errors,
				  size_t size)
{
	struct config *cfg = config_load(path, errors, size);

	if (!cfg)
		return NULL;
	*rs = ruleset_compile(cfg, errors, size);
	if (!*rs) {
		config_free(cfg);
		return NULL;
	}
	return cfg;
}

int server_reload(struct server *srv, char *msg, size_t size)
{
	struct config *cfg, *old = srv->cfg;
	struct ruleset *rs;

	srv->counters.reloads++;
	cfg = server_load_config(srv->config_path, &rs, msg, size);
	if (!cfg) {
		srv->counters.reload_failures++;
		size_t len = strlen(msg);
		while (len > 0 && msg[len - 1] == '\n')
			msg[--len] = '\0';
		log_error("reload, configuration refused; keeping the running one:\n%s", msg);
		return -1;
	}
	warn_restart_needed(old, cfg);
	srv->cfg = cfg;
	log_set_level(cfg->log_level);
	timeline_set_config(srv->tl, cfg);
	server_publish_clock(srv);      /* max_future */
	if (srv->outbox)
		outbox_set_config(srv->outbox, cfg);
	if (srv->engine)
		engine_set_rules(srv->engine, cfg, rs); /* frees the rules that pointed into old */
	else
		ruleset_free(rs);
	if (srv->zap)
		zap_reload(srv->zap, cfg);
	config_free(old);
	log_info("reload, configuration '%s' loaded", srv->config_path);
	return 0;
}
