/*
 * systemd integration behind one small file (cf. Knot's common/systemd.c):
 * readiness, reload and stop notifications, status text, the watchdog ping,
 * and descriptors passed by socket activation. Every call is a no-op when the
 * daemon is not run by systemd.
 */
#ifndef HEARTH_NOTIFY_H
#define HEARTH_NOTIFY_H

#include <stdint.h>

void notify_ready(void);
void notify_reloading(void);
void notify_stopping(void);
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void notify_watchdog(void);
/* Half the watchdog timeout in ms, or 0 when systemd does not watch us. */
int64_t notify_watchdog_interval_ms(void);
/* The passed descriptor named `name` (FileDescriptorName=), or -1. */
int notify_listen_fd(const char *name);

#endif
