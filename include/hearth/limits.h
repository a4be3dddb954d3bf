/* Limits of the contract, each once, with the docs/PROTOCOL.md section that sets it. */
#ifndef HEARTH_LIMITS_H
#define HEARTH_LIMITS_H

#define HEARTH_ID_MAX          128            /* §1.4 customer id, event id, ref */
#define HEARTH_NAME_MAX        32             /* §1.4 type, attr key, rule name */
#define HEARTH_ATTRS_MAX       32             /* §2.1 keys in attrs */
#define HEARTH_EVENT_MAX       8192           /* §2.2 encoded event */
#define HEARTH_BATCH_EVENTS    10000          /* §3.2 events per ingest request */
#define HEARTH_BATCH_BYTES     (16u << 20)    /* §3.2 bytes per ingest request */
#define HEARTH_CONTROL_LINE    (1u << 20)     /* §5.1 bytes per control request */
#define HEARTH_LIST_DEFAULT    100            /* §5.5 default list limit */
#define HEARTH_LIST_MAX        10000          /* §5.5 largest list limit */
#define HEARTH_REPLAY_DEFAULT  1000           /* §5.19 replay default limit */
#define HEARTH_TOP_DEFAULT     16             /* §5.18 top default n */

/* Local limits: what keeps a misbehaving peer from costing unbounded memory. */
#define HEARTH_CONTROL_CLIENTS 1024           /* open control connections */
#define HEARTH_CONTROL_OUTBUF  (8u << 20)     /* unread answers before we stop reading */

#endif
