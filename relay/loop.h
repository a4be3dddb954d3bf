/* The relay's loop and its reload (relay/loop.c). */
#ifndef HEARTH_RELAY_LOOP_H
#define HEARTH_RELAY_LOOP_H

#include "runtime.h"

/* Targets for cfg, reusing r's by name; the new array in *out. */
int relay_targets_build(struct relay *r, struct relay_config *cfg, struct target ***out, struct herr *err);
/* Runs until SIGTERM/SIGINT; the delivery in hand is finished (bounded). */
int relay_run(struct relay *r);

#endif
