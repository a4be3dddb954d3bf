/*
 * The connection to NATS and the JetStream objects hearth creates: the
 * events and alerts streams when missing, and each partition's consumer,
 * re-created at start from the watermark + 1 (a consumer re-bound after a
 * crash would hand out newer messages first).
 */
#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>

#include "cluster_impl.h"
#include "hearth/config.h"
#include "hearth/log.h"

#define ACK_WAIT_NS        (30LL * 1000000000LL)

const char *cluster_js_text(natsStatus s)
{
	const char *last = nats_GetLastError(NULL);
	return last && *last ? last : natsStatus_GetText(s);
}

int cluster_ensure_stream(struct cluster *cl, const char *name, const char *subject, int64_t max_age_ms)
{
	jsStreamInfo *si = NULL;
	jsStreamConfig sc;
	jsErrCode jerr = 0;
	const char *subjects[1] = { subject };
	natsStatus s = js_GetStreamInfo(&si, cl->js, name, NULL, &jerr);

	if (s == NATS_OK) {
		jsStreamInfo_Destroy(si);
		return 0;
	}
	if (s != NATS_NOT_FOUND && jerr != JS_NOT_FOUND_STREAM) {
		log_warning("cluster, stream %s: %s", name, cluster_js_text(s));
		return -1;
	}
	jsStreamConfig_Init(&sc);
	sc.Name = name;
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Storage = js_FileStorage;
	sc.Replicas = cl->cc->replicas;
	sc.MaxAge = max_age_ms * 1000000LL;
	s = js_AddStream(&si, cl->js, &sc, NULL, &jerr);
	if (s != NATS_OK) {
		log_warning("cluster, cannot create stream %s (%s, %d)", name, cluster_js_text(s), (int)jerr);
		return -1;
	}
	log_info("cluster, created stream %s (%s, %lld replicas)", name, subject, (long long)sc.Replicas);
	jsStreamInfo_Destroy(si);
	return 0;
}

int cluster_connected(struct cluster *cl)
{
	return natsConnection_Status(cl->nc) == NATS_CONN_STATUS_CONNECTED;
}

int cluster_consumer_start(struct part *p)
{
	struct cluster *cl = p->cl;
	char subject[128];
	jsConsumerInfo *ci = NULL;
	jsConsumerConfig cc;
	jsSubOptions so;
	jsErrCode jerr = 0;
	natsStatus s;

	snprintf(subject, sizeof(subject), "%s.ev.>", cl->cc->prefix);
	pthread_mutex_lock(&cl->setup_mu);
	if (!cl->events_ready)
		cl->events_ready = cluster_ensure_stream(cl, cl->cc->events_stream, subject,
						 cl->cc->events_max_age_ms) == 0;
	int ready = cl->events_ready;
	pthread_mutex_unlock(&cl->setup_mu);
	if (!ready)
		return -1;
	s = js_DeleteConsumer(cl->js, cl->cc->events_stream, p->durable, NULL, &jerr);
	if (s != NATS_OK && s != NATS_NOT_FOUND && jerr != JS_NOT_FOUND_CONSUMER) {
		log_warning("cluster, partition %u: cannot delete the old consumer (%s)", p->id, cluster_js_text(s));
		return -1;
	}
	jsConsumerConfig_Init(&cc);
	cc.Durable = p->durable;
	cc.Description = cl->cc->shard;
	cc.DeliverPolicy = js_DeliverByStartSequence;
	cc.OptStartSeq = p->applied + 1;
	cc.AckPolicy = js_AckAll;
	cc.AckWait = ACK_WAIT_NS;
	cc.FilterSubject = p->filter;
	cc.MaxAckPending = 100000;
	s = js_AddConsumer(&ci, cl->js, cl->cc->events_stream, &cc, NULL, &jerr);
	if (s != NATS_OK) {
		log_warning("cluster, partition %u: cannot create consumer %s (%s, %d)", p->id, p->durable,
			    cluster_js_text(s), (int)jerr);
		return -1;
	}
	jsConsumerInfo_Destroy(ci);
	jsSubOptions_Init(&so);
	so.Stream = cl->cc->events_stream;
	so.Consumer = p->durable;
	s = js_PullSubscribe(&p->sub, cl->js, p->filter, p->durable, NULL, &so, &jerr);
	if (s != NATS_OK) {
		log_warning("cluster, partition %u: cannot bind consumer %s (%s)", p->id, p->durable,
			    cluster_js_text(s));
		p->sub = NULL;
		return -1;
	}
	p->next_delivery = 1; /* a new consumer numbers its deliveries from 1 */
	log_info("cluster, partition %u: consuming %s from stream seq %llu", p->id, p->filter,
		 (unsigned long long)(p->applied + 1));
	return 0;
}


static void on_disconnected(natsConnection *nc, void *closure)
{
	(void)nc;
	(void)closure;
	log_warning("cluster, disconnected from NATS; reconnecting");
}

static void on_reconnected(natsConnection *nc, void *closure)
{
	char url[256] = "";

	(void)closure;
	natsConnection_GetConnectedUrl(nc, url, sizeof(url));
	log_info("cluster, reconnected to %s", url);
}

/* With this callback set, the first connect returns at once when no server answers yet. */
static void on_connected(natsConnection *nc, void *closure)
{
	char url[256] = "";

	(void)closure;
	natsConnection_GetConnectedUrl(nc, url, sizeof(url));
	log_info("cluster, connected to %s", url);
}

int cluster_connect(struct cluster *cl, struct herr *err)
{
	struct cluster_config *cc = cl->cc;
	natsOptions *opts = NULL;
	jsOptions jo;
	natsStatus s;
	char name[96];

	snprintf(name, sizeof(name), "hearthd %s", cc->shard);
	s = natsOptions_Create(&opts);
	if (s == NATS_OK)
		s = natsOptions_SetServers(opts, (const char **)cc->servers, (int)cc->nservers);
	if (s == NATS_OK)
		s = natsOptions_SetName(opts, name);
	if (s == NATS_OK && cc->creds)
		s = natsOptions_SetUserCredentialsFromFiles(opts, cc->creds, NULL);
	else if (s == NATS_OK)
		s = natsOptions_SetUserInfo(opts, cc->user, cc->password);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(opts, -1);          /* never give up */
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(opts, 250);
	if (s == NATS_OK)
		s = natsOptions_SetRetryOnFailedConnect(opts, true, on_connected, cl);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(opts, on_disconnected, cl);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(opts, on_reconnected, cl);
	if (s == NATS_OK) {
		s = natsConnection_Connect(&cl->nc, opts);
		if (s == NATS_NOT_YET_CONNECTED) {
			log_warning("cluster, no NATS server reachable yet; retrying in the background");
			s = NATS_OK;
		}
	}
	if (s == NATS_OK) {
		jsOptions_Init(&jo);
		jo.Wait = PUBLISH_WAIT_MS;
		s = natsConnection_JetStream(&cl->js, cl->nc, &jo);
	}
	natsOptions_Destroy(opts);
	if (s != NATS_OK)
		return herr_set(err, HERR_IO, "cluster, cannot connect to NATS (%s)", cluster_js_text(s));
	return 0;
}
