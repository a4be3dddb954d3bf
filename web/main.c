/*
 * hearth-web (docs/WEB.md, man hearth-web(8)): options, configuration, the
 * listening socket (or systemd's, named "http"), and the loop: poll() over a
 * signalfd and libmicrohttpd's epoll descriptor, with MHD's own timeout.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hearth/log.h"
#include "hearth/notify.h"
#include "hearth/units.h"
#include "web.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: hearth-web [-c FILE] [--listen HOST:PORT] [--control SOCKET] [--check] [--version]\n"
		   "  -c, --config FILE      configuration (default /etc/hearth/web.yaml)\n"
		   "      --listen HOST:PORT where to serve HTTP (overrides web.listen)\n"
		   "      --control SOCKET   hearthd's control socket (overrides control.path)\n"
		   "      --check            validate the configuration and exit (78 on error)\n");
}

/* Binds HOST:PORT (the first address that works); -1 with err. */
static int bind_listen(const char *host, const char *port, struct herr *err)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
	struct addrinfo *res = NULL;
	int fd = -1, rc, one = 1, saved = 0;

	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		herr_set(err, HERR_IO, "cannot resolve '%s' (%s)", host, gai_strerror(rc));
		return -1;
	}
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
		if (fd < 0) {
			saved = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		herr_set(err, HERR_IO, "cannot listen on %s:%s (%s)", host, port, strerror(saved));
	return fd;
}

static int open_signals(void)
{
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
}

static int run(struct web_http *h, struct web_auth *auth, int sfd)
{
	int64_t wd = notify_watchdog_interval_ms(), next_wd = 0;

	for (;;) {
		struct pollfd pfd[2] = { { .fd = sfd, .events = POLLIN }, { .fd = web_http_fd(h), .events = POLLIN } };
		int64_t timeout = web_http_timeout_ms(h), now = mono_now_ms();
		struct signalfd_siginfo si;

		if (wd > 0) {
			if (now >= next_wd) {
				notify_watchdog();
				next_wd = now + wd;
			}
			if (timeout < 0 || timeout > next_wd - now)
				timeout = next_wd - now;
		}
		if (poll(pfd, 2, timeout < 0 ? -1 : (int)timeout) < 0 && errno != EINTR) {
			log_error("web, poll failed (%s)", strerror(errno));
			return -1;
		}
		while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			if (si.ssi_signo == SIGHUP) {
				/* people come and go more often than the configuration changes */
				if (auth)
					web_auth_reload(auth);
				log_info("web, SIGHUP: %sthe configuration is read at start only; restart to apply a change",
					 auth ? "the users file was read again; " : "");
				continue;
			}
			log_info("web, stopping on signal %u", si.ssi_signo);
			notify_stopping();
			return 0;
		}
		web_http_run(h);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "control", required_argument, NULL, 's' },
		{ "check", no_argument, NULL, 'k' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = "/etc/hearth/web.yaml", *listen_arg = NULL, *control_arg = NULL;
	struct web_config *cfg = NULL;
	struct web_ctl *ctl = NULL;
	struct web_auth *auth = NULL;
	struct web_http *h = NULL;
	struct herr err = { 0 };
	int check = 0, nerrors = 0, c, rc = WEB_EXIT_FAIL, fd = -1, sfd = -1, activated = 0;

	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'l': listen_arg = optarg; break;
		case 's': control_arg = optarg; break;
		case 'k': check = 1; break;
		case 'V': printf("hearth-web %s\n", HEARTH_VERSION); return WEB_EXIT_OK;
		case 'h': usage(stdout); return WEB_EXIT_OK;
		default: usage(stderr); return WEB_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return WEB_EXIT_USAGE;
	}
	if (!(cfg = web_config_load(path, control_arg, &nerrors))) {
		fprintf(stderr, "%s: %d error(s)\n", path, nerrors);
		return WEB_EXIT_CONFIG;
	}
	/* the command line wins over the file */
	if (listen_arg) {
		free(cfg->listen);
		cfg->listen = strdup(listen_arg);
	}
	if (!cfg->listen) {
		fprintf(stderr, "hearth-web: out of memory\n");
		goto out;
	}
	if (web_split_listen(cfg->listen, &cfg->host, &cfg->port) < 0) {
		fprintf(stderr, "hearth-web: --listen: expected HOST:PORT such as 127.0.0.1:8080 or [::1]:8080\n");
		rc = WEB_EXIT_USAGE;
		goto out;
	}
	if (check) {
		/* TLS files are read now too, so that --check catches a missing key */
		if (cfg->tls_cert) {
			FILE *f;
			const char *files[2] = { cfg->tls_cert, cfg->tls_key };
			for (int i = 0; i < 2; i++) {
				if (!(f = fopen(files[i], "r"))) {
					fprintf(stderr, "%s: web.tls: cannot open '%s' (%s)\n", path, files[i], strerror(errno));
					rc = WEB_EXIT_CONFIG;
					goto out;
				}
				fclose(f);
			}
		}
		if (cfg->users && !(auth = web_auth_new(cfg->users, &nerrors))) {
			fprintf(stderr, "%s: %d error(s)\n", cfg->users, nerrors);
			rc = WEB_EXIT_CONFIG;
			goto out;
		}
		printf("configuration OK\n");
		rc = WEB_EXIT_OK;
		goto out;
	}
	log_init("hearth-web", (enum log_level)cfg->log_level);
	if (cfg->users && !(auth = web_auth_new(cfg->users, &nerrors))) {
		log_error("web, %s: %d error(s)", cfg->users, nerrors);
		rc = WEB_EXIT_CONFIG;
		goto out;
	}
	if ((sfd = open_signals()) < 0) {
		log_error("web, cannot open a signalfd (%s)", strerror(errno));
		goto out;
	}
	if ((fd = notify_listen_fd("http")) >= 0) {
		activated = 1;
	} else if ((fd = bind_listen(cfg->host, cfg->port, &err)) < 0) {
		log_error("web, %s", err.msg);
		goto out;
	}
	if (!(ctl = web_ctl_new(cfg, &err))) {
		log_error("web, %s", err.msg);
		goto out;
	}
	if (!(h = web_http_new(cfg, ctl, auth, fd, &err))) {
		log_error("web, %s", err.msg);
		goto out;
	}
	fd = -1;                        /* MHD owns it now */
	log_info("web, listening on %s://%s%s (hearthd at %s), %s", cfg->tls_cert ? "https" : "http",
		 activated ? "the socket systemd passed, configured as " : "", cfg->listen, web_ctl_where(ctl),
		 cfg->readonly ? "read-only" : "writes (ack, silence) for the users of web.users");
	notify_ready();
	if (run(h, auth, sfd) == 0)
		rc = WEB_EXIT_OK;
out:
	web_http_free(h);
	web_auth_free(auth);
	web_ctl_free(ctl);
	if (fd >= 0)
		close(fd);
	if (sfd >= 0)
		close(sfd);
	if (!check && rc == WEB_EXIT_OK)
		log_info("web, stopped");
	web_config_free(cfg);
	return rc;
}
