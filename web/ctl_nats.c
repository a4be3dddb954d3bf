/*
 * The NATS transport: hearth-web in front of a cluster of shards (docs/WEB.md,
 * PROTOCOL.md §9.6), through libhearth's natsctl, as `hearthctl --nats`.
 *
 * A command about one customer goes to the shard owning its partition; the
 * others are scattered to every shard and their answers merged, with
 * `missing_partitions` when a shard did not answer within control.timeout. A
 * view's requests go out together and share that one deadline, so a shard
 * that is down costs a page one wait and a warning, not a hang.
 *
 * libnats keeps the connection (and reconnects by itself): nothing is ever
 * sent twice from here, reads included, so writes need nothing special. They
 * are answered `forbidden` by the shards anyway (§9.6): over NATS every
 * request is a non-admin's.
 */
#include <stdlib.h>

#include "hearth/natsctl.h"
#include "web.h"

struct nats_transport {
	struct web_transport base;      /* first: the transport is this */
	struct natsctl *ctl;
};

static int nats_calls(struct web_transport *t, struct json_object **reqs, struct json_object **answers,
		      size_t n, struct herr *err)
{
	return natsctl_calls(((struct nats_transport *)t)->ctl, reqs, answers, n, err);
}

static int nats_write(struct web_transport *t, struct json_object *req, struct json_object **answer,
		      struct herr *err)
{
	return natsctl_calls(((struct nats_transport *)t)->ctl, &req, answer, 1, err);
}

static void nats_free(struct web_transport *t)
{
	struct nats_transport *c = (struct nats_transport *)t;

	if (!c)
		return;
	natsctl_free(c->ctl);
	free(c);
}

static const struct web_transport_ops nats_ops = {
	.calls = nats_calls,
	.write = nats_write,
	.free = nats_free,
};

struct web_transport *web_nats_transport_new(const struct web_nats_config *n, int64_t timeout_ms,
					     struct herr *err)
{
	struct natsctl_opts o = {
		.urls = n->urls, .user = n->user, .password = n->password, .creds = n->creds,
		.prefix = n->prefix, .partitions = n->partitions, .name = "hearth-web",
		.request_ms = timeout_ms, .scatter_ms = timeout_ms,
		/* like a hearthd that is down, a NATS that is down is a banner, not a refusal to start */
		.background_connect = 1,
	};
	struct nats_transport *c = calloc(1, sizeof(*c));

	if (!c) {
		herr_set(err, HERR_NOMEM, "out of memory");
		return NULL;
	}
	c->base.ops = &nats_ops;
	if (!(c->ctl = natsctl_new(&o, err))) {
		free(c);
		return NULL;
	}
	return &c->base;
}
