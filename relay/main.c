/*
 * hearth-relay: hearthd's alerts into team chat (PROTOCOL.md §8.7, docs/RELAY.md).
 * Options, config, open the state and the source, run, save, stop.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hearth/log.h"
#include "hearth/notify.h"
#include "loop.h"
#include "runtime.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: hearth-relay [-c FILE] [--check] [--version]\n"
		   "  -c, --config FILE  relay configuration (default /etc/hearth/relay.yaml)\n"
		   "      --check        validate the configuration and exit (78 on error)\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'k' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = "/etc/hearth/relay.yaml";
	struct relay r = { 0 };
	struct herr err;
	int check = 0, nerrors = 0, c, rc = RELAY_EXIT_FAIL, curl_up = 0;

	/*
	 * Stop and reload signals wait for the loop's signalfd from the very start:
	 * a SIGTERM that came while the targets were being set up used to kill the
	 * relay by the default action instead of stopping it cleanly.
	 */
	sigset_t loop_signals;
	sigemptyset(&loop_signals);
	sigaddset(&loop_signals, SIGTERM);
	sigaddset(&loop_signals, SIGINT);
	sigaddset(&loop_signals, SIGHUP);
	sigprocmask(SIG_BLOCK, &loop_signals, NULL);
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'k': check = 1; break;
		case 'V': printf("hearth-relay %s\n", HEARTH_VERSION); return RELAY_EXIT_OK;
		case 'h': usage(stdout); return RELAY_EXIT_OK;
		default: usage(stderr); return RELAY_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return RELAY_EXIT_USAGE;
	}
	if (!(r.cfg = relay_config_load(path, &nerrors))) {
		fprintf(stderr, "%s: %d error(s)\n", path, nerrors);
		return RELAY_EXIT_CONFIG;
	}
	if (check) {
		printf("configuration OK\n");
		relay_config_free(r.cfg);
		return RELAY_EXIT_OK;
	}
	log_init("hearth-relay", (enum log_level)r.cfg->log_level);
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	if (mkdir(r.cfg->state_dir, 0750) < 0 && errno != EEXIST) {
		log_error("relay, cannot create the state directory '%s' (%s)", r.cfg->state_dir, strerror(errno));
		goto out;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("relay, cannot initialise libcurl");
		goto out;
	}
	curl_up = 1;
	if (!(r.multi = curl_multi_init())) {
		log_error("relay, cannot create a curl multi handle");
		goto out;
	}
	if (relay_targets_build(&r, r.cfg, &r.targets, &err) < 0) {
		log_error("%s", err.msg);
		goto out;
	}
	r.ntargets = r.cfg->ntargets;
	if (source_open(&r, &err) < 0) {
		log_error("%s", err.msg);
		goto out;
	}
	log_info("relay, started with %zu targets", r.ntargets);
	if (relay_run(&r) == 0)
		rc = RELAY_EXIT_OK;
out:
	for (size_t i = 0; i < r.ntargets; i++)
		target_free(r.targets[i], r.multi);
	free(r.targets);
	source_close(&r);
	if (r.multi)
		curl_multi_cleanup(r.multi);
	if (curl_up)
		curl_global_cleanup();
	log_info("relay, stopped");
	relay_config_free(r.cfg);
	return rc;
}
