/*
 * Control requests over NATS: they arrive on libnats' subscription threads,
 * are run by the loop like any other control request, and answered from here.
 */
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>

#include "cluster_impl.h"

static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	struct ctl_sub *cs = closure;
	const char *reply = natsMsg_GetReply(msg);
	struct item it = { .kind = ITEM_REQUEST, .scatter = cs->scatter };

	(void)sub;
	if (reply && *reply) {
		it.data = natsMsg_GetData(msg);
		it.len = (size_t)natsMsg_GetDataLength(msg);
		cluster_item_push(cs->cl, &it);
		cluster_item_wait(cs->cl, &it);
		if (it.answer)
			natsConnection_PublishString(nc, reply, it.answer);
		free(it.answer);
	}
	natsMsg_Destroy(msg);
}

int cluster_subscribe_control(struct cluster *cl, struct herr *err)
{
	char subject[128];
	natsStatus s;

	cl->ctl_one = (struct ctl_sub){ cl, 0 };
	cl->ctl_all = (struct ctl_sub){ cl, 1 };
	if (!(cl->ctl_subs = calloc(cl->nparts + 1, sizeof(*cl->ctl_subs))))
		return herr_set(err, HERR_NOMEM, "out of memory");
	for (size_t i = 0; i <= cl->nparts; i++) {
		if (i < cl->nparts)
			snprintf(subject, sizeof(subject), "%s.ctl.p.%u", cl->cc->prefix, cl->parts[i].id);
		else
			snprintf(subject, sizeof(subject), "%s.ctl.all", cl->cc->prefix);
		s = natsConnection_Subscribe(&cl->ctl_subs[i], cl->nc, subject, on_request,
					     i < cl->nparts ? &cl->ctl_one : &cl->ctl_all);
		if (s != NATS_OK)
			return herr_set(err, HERR_IO, "cluster, cannot subscribe to %s (%s)", subject,
					cluster_js_text(s));
		cl->nctl_subs++;
	}
	return 0;
}
