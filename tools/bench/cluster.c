/*
 * Cluster mode (issue #17, docs/SCALING.md §8): a 3-node nats-server JetStream
 * cluster (R3) on loopback and two hearthd shards owning 8 of 16 partitions
 * each, everything on this machine.
 *
 *   ingest    the generated stream, batched by partition (CLUSTER_BATCH events
 *             per message, a Nats-Msg-Id each), published asynchronously; the
 *             figure counts events applied by the shards (their watermarks
 *             caught up) over the wall time from the first publish; the PubAck
 *             rate alone is reported beside it; then the same events through
 *             one hearthd's ZeroMQ ingest, and the ratio
 *   alerts    at rest, one complaint at a time that fires complaint_unresolved
 *             at once: from the publish to its notification on hearth.alerts.>
 *   query     `customer` by request on the owning partition's subject, at rest
 *   failover  a producer publishing one event per message synchronously while
 *             the stream's leader is killed with -9: the longest wait between
 *             two PubAcks is the stall; then every event acked must be applied
 *
 * Skipped (with a line saying so) when nats-server is not installed.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "hearth/cluster.h"
#include "hearth/units.h"

#define NODES           3
#define PARTITIONS      16
#define CLUSTER_BATCH   100
#define USER            "hearth"
#define PASSWORD        "bench-pw"
#define START_WAIT_MS   60000
#define APPLY_WAIT_MS   300000
#define STALL_AFTER_MS  3000    /* keep publishing this long after the first PubAck past the kill */

struct node {
	pid_t pid;
	int port, cport;
	char name[8];
	char conf[512];
	char url[64];
};

struct cluster_bench {
	struct node nodes[NODES];
	char urls[NODES * 64];
	const char *servers[NODES];
	natsConnection *nc;
	jsCtx *js;
	struct daemon shards[2];
	int nshards;
};

/*
 * n free loopback ports, all different: each socket stays bound until all are
 * picked, or the kernel may hand out a port just closed again (a node's
 * client and route ports once came out the same). -1 when one cannot be had.
 */
static int free_ports(int *ports, int n)
{
	int fds[2 * NODES], rc = 0;

	for (int i = 0; i < n; i++) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t len = sizeof(a);
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		ports[i] = -1;
		if (fds[i] >= 0 && bind(fds[i], (struct sockaddr *)&a, sizeof(a)) == 0 &&
		    getsockname(fds[i], (struct sockaddr *)&a, &len) == 0)
			ports[i] = ntohs(a.sin_port);
		rc |= ports[i] < 0 ? -1 : 0;
	}
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return rc;
}

static char nats_server[512];

static int node_start(struct node *n)
{
	char log[600];

	snprintf(log, sizeof(log), "%s.log", n->conf);
	n->pid = fork();
	if (n->pid < 0)
		return -1;
	if (n->pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(nats_server, "nats-server", "-c", n->conf, (char *)NULL);
		_exit(127);
	}
	return 0;
}

static void node_kill(struct node *n, int sig)
{
	if (n->pid <= 0)
		return;
	kill(n->pid, sig);
	waitpid(n->pid, NULL, 0);
	n->pid = 0;
}

static int nodes_write(struct cluster_bench *cb, struct herr *err)
{
	int ports[2 * NODES];

	if (free_ports(ports, 2 * NODES) < 0)
		return herr_set(err, HERR_IO, "bench, no free port");
	for (int i = 0; i < NODES; i++) {
		struct node *n = &cb->nodes[i];
		n->port = ports[2 * i];
		n->cport = ports[2 * i + 1];
		snprintf(n->name, sizeof(n->name), "n%d", i + 1);
		snprintf(n->url, sizeof(n->url), "nats://127.0.0.1:%d", n->port);
		cb->servers[i] = n->url;
	}
	for (int i = 0; i < NODES; i++) {
		struct node *n = &cb->nodes[i];
		char dir[400], routes[256] = "";
		snprintf(dir, sizeof(dir), "%s/nats-%s", benv.scratch, n->name);
		mkdir(dir, 0700);
		snprintf(n->conf, sizeof(n->conf), "%s/nats.conf", dir);
		for (int j = 0; j < NODES; j++)
			if (j != i)
				snprintf(routes + strlen(routes), sizeof(routes) - strlen(routes), "%snats-route://127.0.0.1:%d",
					 routes[0] ? ", " : "", cb->nodes[j].cport);
		FILE *f = fopen(n->conf, "w");
		if (!f)
			return herr_set(err, HERR_IO, "bench, cannot write '%s'", n->conf);
		fprintf(f, "server_name: %s\nlisten: 127.0.0.1:%d\n"
			"jetstream { store_dir: \"%s/js\", max_memory_store: 64MB, max_file_store: 8GB }\n"
			"cluster { name: hearthbench, listen: 127.0.0.1:%d, routes: [%s] }\n"
			"accounts {\n  HEARTH {\n    jetstream: enabled\n"
			"    users: [ {user: %s, password: \"%s\"} ]\n"
			"    mappings: { \"hearth.in.*\": \"hearth.ev.{{partition(%d,1)}}.{{wildcard(1)}}\" }\n  }\n"
			"  SYS { users: [ {user: sys, password: \"%s-sys\"} ] }\n}\nsystem_account: SYS\n",
			n->name, n->port, dir, n->cport, routes, USER, PASSWORD, PARTITIONS, PASSWORD);
		fclose(f);
	}
	return 0;
}

/* Creates a stream, retrying while the cluster elects its meta leader. */
static int stream_make(struct cluster_bench *cb, const char *name, const char *subject, struct herr *err)
{
	const char *subjects[1] = { subject };
	int64_t end = mono_now_ms() + START_WAIT_MS;
	jsStreamConfig sc;
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus s = NATS_ERR;

	jsStreamConfig_Init(&sc);
	sc.Name = name;
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Storage = js_FileStorage;
	sc.Replicas = 3;
	while (mono_now_ms() < end) {
		s = js_AddStream(&si, cb->js, &sc, NULL, &jerr);
		if (s == NATS_OK) {
			jsStreamInfo_Destroy(si);
			return 0;
		}
		usleep(200000);
	}
	return herr_set(err, HERR_IO, "bench, cannot create stream %s (%s)", name, natsStatus_GetText(s));
}

static int cluster_up(struct cluster_bench *cb, struct herr *err)
{
	natsOptions *opts = NULL;
	int64_t end = mono_now_ms() + START_WAIT_MS;
	jsOptions jo;
	natsStatus s = NATS_ERR;

	if (nodes_write(cb, err) < 0)
		return -1;
	for (int i = 0; i < NODES; i++)
		if (node_start(&cb->nodes[i]) < 0)
			return herr_set(err, HERR_IO, "bench, cannot start nats-server (%s)", strerror(errno));
	if (natsOptions_Create(&opts) != NATS_OK ||
	    natsOptions_SetServers(opts, cb->servers, NODES) != NATS_OK ||
	    natsOptions_SetUserInfo(opts, USER, PASSWORD) != NATS_OK ||
	    natsOptions_SetMaxReconnect(opts, -1) != NATS_OK ||
	    natsOptions_SetReconnectWait(opts, 100) != NATS_OK) {
		natsOptions_Destroy(opts);
		return herr_set(err, HERR_NOMEM, "out of memory");
	}
	while (mono_now_ms() < end && (s = natsConnection_Connect(&cb->nc, opts)) != NATS_OK)
		usleep(100000);
	natsOptions_Destroy(opts);
	if (s != NATS_OK)
		return herr_set(err, HERR_IO, "bench, cannot connect to the NATS cluster (%s)", natsStatus_GetText(s));
	jsOptions_Init(&jo);
	jo.Wait = 10000;
	jo.PublishAsync.MaxPending = 1024;
	jo.PublishAsync.StallWait = 10000;
	if (natsConnection_JetStream(&cb->js, cb->nc, &jo) != NATS_OK)
		return herr_set(err, HERR_IO, "bench, no JetStream context");
	if (stream_make(cb, "HEARTH_EVENTS", "hearth.ev.>", err) < 0 ||
	    stream_make(cb, "HEARTH_ALERTS", "hearth.alerts.>", err) < 0)
		return -1;
	return 0;
}

static int shards_start(struct bench *b, struct cluster_bench *cb, struct herr *err)
{
	char yaml[2048], list[256];

	for (int k = 0; k < 2; k++) {
		list[0] = '\0';
		for (int p = k; p < PARTITIONS; p += 2)
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%d", list[0] ? ", " : "", p);
		snprintf(yaml, sizeof(yaml),
			 "cluster:\n  servers: [\"%s\", \"%s\", \"%s\"]\n  user: %s\n  password: \"%s\"\n"
			 "  shard: s%d\n  partitions: %d\n  owns: [%s]\n  fetch: 256\n",
			 cb->servers[0], cb->servers[1], cb->servers[2], USER, PASSWORD, k, PARTITIONS, list);
		daemon_extra_yaml = yaml;
		char name[32];
		snprintf(name, sizeof(name), "cluster-s%d", k);
		int rc = daemon_start(&cb->shards[k], name, err);
		daemon_extra_yaml = NULL;
		if (rc < 0)
			return -1;
		cb->nshards++;
		if (daemon_clock_set(&cb->shards[k], b->end_ms, err) < 0)
			return -1;
	}
	return 0;
}

static double applied_messages(struct cluster_bench *cb, struct herr *err)
{
	double total = 0;

	for (int k = 0; k < cb->nshards; k++) {
		double v = daemon_metric(&cb->shards[k], "hearth_cluster_messages_total{result=\"applied\"}", err);
		if (v < 0)
			return -1;
		total += v;
	}
	return total;
}

static int wait_applied(struct cluster_bench *cb, double messages, struct herr *err)
{
	int64_t end = mono_now_ms() + APPLY_WAIT_MS;
	double got = 0;

	while (mono_now_ms() < end) {
		if ((got = applied_messages(cb, err)) < 0)
			return -1;
		if (got >= messages)
			return 0;
		usleep(5000);
	}
	return herr_set(err, HERR_IO, "bench, the shards applied %.0f of %.0f messages in time", got, messages);
}

/* ---- ingest ---------------------------------------------------------------------- */

struct msgs {
	char **subject, **text;
	size_t *len;
	size_t n, cap;
};

static void msgs_free(struct msgs *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->subject[i]);
		free(m->text[i]);
	}
	free(m->subject);
	free(m->text);
	free(m->len);
}

/* The stream as JSON arrays of one partition's events, CLUSTER_BATCH each. */
static int msgs_make(struct msgs *m, const struct gen_stream *s, struct herr *err)
{
	struct wpart { char *buf; size_t len, cap, n; } part[PARTITIONS] = { { 0 } };
	char line[2048], id[32];

	memset(m, 0, sizeof(*m));
	for (size_t i = 0; i <= s->n; i++) {
		int p = -1;
		if (i < s->n) {
			size_t len = gen_json(s, i, line, sizeof(line));
			gen_customer_id(s, s->ev[i].cust, id, sizeof(id));
			p = (int)(cluster_fnv1a32(id, strlen(id)) % PARTITIONS);
			struct wpart *w = &part[p];
			if (w->len + len + 3 > w->cap) {
				size_t cap = w->cap ? w->cap * 2 : 65536;
				char *nb = realloc(w->buf, cap);
				if (!nb)
					return herr_set(err, HERR_NOMEM, "out of memory");
				w->buf = nb;
				w->cap = cap;
			}
			w->buf[w->len++] = w->n ? ',' : '[';
			memcpy(w->buf + w->len, line, len);
			w->len += len;
			w->n++;
		}
		for (int q = 0; q < PARTITIONS; q++) {
			struct wpart *w = &part[q];
			if (!w->n || (i < s->n && (q != p || w->n < CLUSTER_BATCH)))
				continue;
			if (m->n == m->cap) {
				m->cap = m->cap ? m->cap * 2 : 1024;
				m->subject = realloc(m->subject, m->cap * sizeof(char *));
				m->text = realloc(m->text, m->cap * sizeof(char *));
				m->len = realloc(m->len, m->cap * sizeof(size_t));
				if (!m->subject || !m->text || !m->len)
					return herr_set(err, HERR_NOMEM, "out of memory");
			}
			w->buf[w->len++] = ']';
			m->text[m->n] = malloc(w->len);
			m->subject[m->n] = malloc(32);
			if (!m->text[m->n] || !m->subject[m->n])
				return herr_set(err, HERR_NOMEM, "out of memory");
			memcpy(m->text[m->n], w->buf, w->len);
			m->len[m->n] = w->len;
			snprintf(m->subject[m->n], 32, "hearth.ev.%d.batch", q);
			m->n++;
			w->len = w->n = 0;
		}
	}
	for (int q = 0; q < PARTITIONS; q++)
		free(part[q].buf);
	return 0;
}

static int publish_all(struct cluster_bench *cb, const struct msgs *m, const char *tag, struct herr *err)
{
	jsPubOptions po;
	char id[64];

	for (size_t i = 0; i < m->n; i++) {
		natsMsg *msg = NULL;
		snprintf(id, sizeof(id), "%s-%zu", tag, i);
		if (natsMsg_Create(&msg, m->subject[i], NULL, m->text[i], (int)m->len[i]) != NATS_OK ||
		    natsMsgHeader_Set(msg, "Nats-Msg-Id", id) != NATS_OK)
			return herr_set(err, HERR_NOMEM, "out of memory");
		jsPubOptions_Init(&po);
		po.MaxWait = 30000;
		natsStatus s = js_PublishMsgAsync(cb->js, &msg, &po);
		natsMsg_Destroy(msg);
		if (s != NATS_OK)
			return herr_set(err, HERR_IO, "bench, publishing failed (%s)", natsStatus_GetText(s));
	}
	jsPubOptions_Init(&po);
	po.MaxWait = 60000;
	if (js_PublishAsyncComplete(cb->js, &po) != NATS_OK)
		return herr_set(err, HERR_IO, "bench, PubAcks missing");
	return 0;
}

/* ---- latencies ---------------------------------------------------------------------- */

static int alert_latencies(struct bench *b, struct cluster_bench *cb, double *us, size_t n, struct herr *err)
{
	natsSubscription *sub = NULL;
	char ev[512], cust[32], subject[64], id[48];
	int64_t ts = b->end_ms - 3 * MS_PER_DAY;        /* complaint_unresolved fires at once */
	int rc = -1;

	if (natsConnection_SubscribeSync(&sub, cb->nc, "hearth.alerts.>") != NATS_OK ||
	    natsConnection_Flush(cb->nc) != NATS_OK) {
		herr_set(err, HERR_IO, "bench, cannot subscribe to hearth.alerts.>");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		jsPubAck *pa = NULL;
		jsPubOptions po;
		snprintf(cust, sizeof(cust), "L%07zu", i);
		snprintf(ev, sizeof(ev), "{\"id\":\"lat-%zu\",\"customer\":\"%s\",\"ts\":%lld,\"type\":\"complaint\",\"ref\":\"LK-%zu\"}",
			 i, cust, (long long)ts, i);
		snprintf(subject, sizeof(subject), "hearth.in.%s", cust);
		snprintf(id, sizeof(id), "lat-%zu", i);
		jsPubOptions_Init(&po);
		po.MsgId = id;
		int64_t t0 = mono_now_us();
		if (js_Publish(&pa, cb->js, subject, ev, (int)strlen(ev), &po, NULL) != NATS_OK) {
			herr_set(err, HERR_IO, "bench, publishing a complaint failed");
			goto out;
		}
		jsPubAck_Destroy(pa);
		for (;;) {
			natsMsg *m = NULL;
			if (natsSubscription_NextMsg(&m, sub, 30000) != NATS_OK) {
				herr_set(err, HERR_IO, "bench, no notification for %s", cust);
				goto out;
			}
			int mine = strstr(natsMsg_GetData(m), cust) != NULL;
			natsMsg_Destroy(m);
			if (mine)
				break;
		}
		us[i] = (double)(mono_now_us() - t0);
	}
	rc = 0;
out:
	natsSubscription_Destroy(sub);
	return rc;
}

static int query_latencies(const struct gen_stream *s, struct cluster_bench *cb, double *us, size_t n,
			   struct herr *err)
{
	char req[128], id[32], subject[64];

	for (size_t i = 0; i < n; i++) {
		natsMsg *m = NULL;
		gen_customer_id(s, (uint32_t)((i * 7919) % s->p.customers), id, sizeof(id));
		snprintf(req, sizeof(req), "{\"cmd\":\"customer\",\"id\":\"%s\"}", id);
		snprintf(subject, sizeof(subject), "hearth.ctl.p.%u", cluster_fnv1a32(id, strlen(id)) % PARTITIONS);
		int64_t t0 = mono_now_us();
		if (natsConnection_RequestString(&m, cb->nc, subject, req, 10000) != NATS_OK)
			return herr_set(err, HERR_IO, "bench, no answer on %s", subject);
		us[i] = (double)(mono_now_us() - t0);
		natsMsg_Destroy(m);
	}
	return 0;
}

/* ---- the leader's kill -9 ------------------------------------------------------------- */

struct stall {
	struct cluster_bench *cb;
	int64_t ts;                     /* events a day before the shards' clock */
	int64_t kill_us;                /* set by the main thread, read by the producer */
	int stop;
	pthread_mutex_t mu;
	size_t acked;
	double longest_ms;              /* the longest wait for a PubAck after the kill */
	int failed;
};

static void *stall_producer(void *arg)
{
	struct stall *st = arg;
	char ev[256], id[32], cust[16];
	int64_t last = mono_now_us(), past = 0;

	for (size_t i = 0;; i++) {
		pthread_mutex_lock(&st->mu);
		int stop = st->stop;
		int64_t kill_us = st->kill_us;
		pthread_mutex_unlock(&st->mu);
		if (stop || (past && mono_now_us() - past > STALL_AFTER_MS * 1000LL))
			break;
		snprintf(cust, sizeof(cust), "F%05zu", i % 1000);
		snprintf(ev, sizeof(ev), "{\"customer\":\"%s\",\"ts\":%lld,\"type\":\"contact\"}", cust,
			 (long long)(st->ts + (int64_t)i));
		snprintf(id, sizeof(id), "stall-%zu", i);
		for (;;) {      /* the same id until a PubAck: the stream keeps one copy */
			jsPubAck *pa = NULL;
			jsPubOptions po;
			char subject[48];
			jsPubOptions_Init(&po);
			po.MsgId = id;
			po.MaxWait = 2000;
			snprintf(subject, sizeof(subject), "hearth.in.%s", cust);
			natsStatus s = js_Publish(&pa, st->cb->js, subject, ev, (int)strlen(ev), &po, NULL);
			jsPubAck_Destroy(pa);
			if (s == NATS_OK)
				break;
			usleep(20000);
			pthread_mutex_lock(&st->mu);
			stop = st->stop;
			pthread_mutex_unlock(&st->mu);
			if (stop) {
				st->failed = 1;
				return NULL;
			}
		}
		int64_t now = mono_now_us();
		if (kill_us && now > kill_us) {
			double gap = (double)(now - (last > kill_us ? last : kill_us)) / 1000.0;
			if (gap > st->longest_ms)
				st->longest_ms = gap;
			if (!past)
				past = now;
		}
		last = now;
		pthread_mutex_lock(&st->mu);
		st->acked++;
		pthread_mutex_unlock(&st->mu);
	}
	return NULL;
}

static struct node *stream_leader(struct cluster_bench *cb)
{
	jsStreamInfo *si = NULL;
	struct node *leader = NULL;

	if (js_GetStreamInfo(&si, cb->js, "HEARTH_EVENTS", NULL, NULL) != NATS_OK)
		return NULL;
	for (int i = 0; si->Cluster && si->Cluster->Leader && i < NODES; i++)
		if (strcmp(cb->nodes[i].name, si->Cluster->Leader) == 0)
			leader = &cb->nodes[i];
	jsStreamInfo_Destroy(si);
	return leader;
}

/* ---- the phase -------------------------------------------------------------------------- */

/* nats-server on $PATH (Debian puts it in /usr/sbin), or 0. */
static int have_nats_server(void)
{
	const char *path = getenv("PATH");
	char dirs[4096];

	snprintf(dirs, sizeof(dirs), "%s:/usr/sbin:/usr/local/sbin", path ? path : "/usr/bin:/bin");
	for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(nats_server, sizeof(nats_server), "%s/nats-server", d);
		if (access(nats_server, X_OK) == 0)
			return 1;
	}
	return 0;
}

int phase_cluster(struct bench *b, struct herr *err)
{
	struct cluster_bench cb = { 0 };
	struct gen_stream s = { 0 };
	struct msgs m = { 0 };
	struct daemon one = { 0 };
	struct frames f = { 0 };
	struct ingest_result res;
	struct results *r = &b->r;
	double *lat = NULL;
	size_t nlat = b->sz.alert_pairs, nq = b->sz.queries;
	int rc = -1;

	if (!have_nats_server()) {
		say("cluster: nats-server is not installed (tools/deps.sh installs it); phase skipped");
		return 0;
	}
	say("cluster: 3 nats-server nodes (R3) and 2 shards of 16 partitions, on loopback");
	struct gen_params p = {
		.seed = 17, .customers = b->sz.shard_customers / 2, .events = b->sz.shard_events / 2,
		.end_ms = b->end_ms, .span_ms = 365 * MS_PER_DAY, .id_prefix = 'k', .cust_prefix = "K",
	};
	if (gen_stream_make(&s, &p, err) < 0 || msgs_make(&m, &s, err) < 0)
		goto out;
	if (cluster_up(&cb, err) < 0 || shards_start(b, &cb, err) < 0)
		goto out;

	/* ingest through the stream into both shards */
	double t0 = now_s();
	if (publish_all(&cb, &m, "ing", err) < 0)
		goto out;
	double t_acked = now_s();
	if (wait_applied(&cb, (double)m.n, err) < 0)
		goto out;
	double t_applied = now_s();
	r->cluster_eps = (double)s.n / (t_applied - t0);
	r->cluster_acked_eps = (double)s.n / (t_acked - t0);
	r->cluster_events = s.n;
	r->cluster_messages = m.n;
	say("cluster: %zu events in %zu messages: PubAcked in %.2f s, applied by both shards in %.2f s (%.0f events/s)",
	    s.n, m.n, t_acked - t0, t_applied - t0, r->cluster_eps);

	/* the same events through one hearthd's ZeroMQ ingest */
	if (daemon_start(&one, "cluster-zmq", err) < 0 || daemon_clock_set(&one, b->end_ms, err) < 0 ||
	    frames_make(&f, &s, 1000, err) < 0 ||
	    produce(b->zctx, one.ingest, &f, 0, f.n, 8, 0, 0, &res, err) < 0)
		goto out;
	r->cluster_zmq_eps = (double)res.events / res.seconds;
	daemon_stop(&one);
	one.pid = 0;
	say("cluster: the same events into one hearthd over ZeroMQ: %.0f events/s", r->cluster_zmq_eps);

	/* event → alert in the alerts stream, at rest: the shards' derived state written first */
	for (int k = 0; k < cb.nshards; k++)
		if (daemon_wait_flushed(&cb.shards[k], err) < 0)
			goto out;
	if (!(lat = calloc(nlat > nq ? nlat : nq, sizeof(*lat)))) {
		herr_set(err, HERR_NOMEM, "out of memory");
		goto out;
	}
	if (alert_latencies(b, &cb, lat, nlat, err) < 0)
		goto out;
	sort_doubles(lat, nlat);
	r->cluster_alert_p50_ms = pct(lat, nlat, 50) / 1000;
	r->cluster_alert_p99_ms = pct(lat, nlat, 99) / 1000;
	r->cluster_alert_n = nlat;
	say("cluster: event -> alert in HEARTH_ALERTS, %zu samples: p50 %.2f ms, p99 %.2f ms", nlat,
	    r->cluster_alert_p50_ms, r->cluster_alert_p99_ms);

	/* a query through NATS to the owning shard, at rest */
	if (query_latencies(&s, &cb, lat, nq, err) < 0)
		goto out;
	sort_doubles(lat, nq);
	r->cluster_query_p50_ms = pct(lat, nq, 50) / 1000;
	r->cluster_query_p99_ms = pct(lat, nq, 99) / 1000;
	r->cluster_query_n = nq;
	say("cluster: customer by request to the owning shard, %zu calls: p50 %.2f ms, p99 %.2f ms", nq,
	    r->cluster_query_p50_ms, r->cluster_query_p99_ms);

	/* kill -9 of the events stream's leader under a steady producer */
	struct stall st = { .cb = &cb, .ts = b->end_ms - MS_PER_DAY };
	pthread_t th;
	pthread_mutex_init(&st.mu, NULL);
	double before = applied_messages(&cb, err);
	if (before < 0 || pthread_create(&th, NULL, stall_producer, &st)) {
		pthread_mutex_destroy(&st.mu);
		goto out;
	}
	usleep(1000000);
	struct node *leader = stream_leader(&cb);
	if (leader) {
		pthread_mutex_lock(&st.mu);
		st.kill_us = mono_now_us();
		pthread_mutex_unlock(&st.mu);
		node_kill(leader, SIGKILL);
	}
	pthread_join(th, NULL);
	pthread_mutex_destroy(&st.mu);
	if (!leader || st.failed) {
		herr_set(err, HERR_IO, "bench, %s", leader ? "the producer gave up after the leader's kill"
							  : "no leader of HEARTH_EVENTS");
		goto out;
	}
	if (wait_applied(&cb, before + (double)st.acked, err) < 0)
		goto out;
	r->cluster_stall_ms = st.longest_ms;
	r->cluster_stall_acked = st.acked;
	say("cluster: kill -9 of the stream leader (%s): longest wait for a PubAck %.0f ms; %zu events acked, "
	    "all applied", leader->name, st.longest_ms, st.acked);
	rc = 0;
out:
	free(lat);
	frames_free(&f);
	if (one.pid)
		daemon_stop(&one);
	for (int k = 0; k < cb.nshards; k++)
		daemon_stop(&cb.shards[k]);
	jsCtx_Destroy(cb.js);
	natsConnection_Destroy(cb.nc);
	for (int i = 0; i < NODES; i++)
		node_kill(&cb.nodes[i], SIGTERM);
	msgs_free(&m);
	gen_stream_free(&s);
	return rc;
}
