/* SPDX-License-Identifier: GPL-2.0-only */
/* systemd service integration (sd_notify): READY=1 once listening, a
 * STATUS= line kept current, STOPPING=1 when draining, and watchdog pings
 * when the unit sets WatchdogSec.  Every call is a no-op when echosrv was
 * not started by systemd (NOTIFY_SOCKET unset), so main calls them always. */
#ifndef ECHOSRV_SERVICE_H
#define ECHOSRV_SERVICE_H

#include <stdint.h>

struct server;

/* Read the watchdog settings; call once at start. */
void service_init(void);
void service_ready(struct server *srv);
/* STOPPING=1, and EXTEND_TIMEOUT_USEC= for drain_s seconds of draining
 * plus SERVICE_STOP_MARGIN_S to exit: TimeoutStopSec follows the drain. */
#define SERVICE_STOP_MARGIN_S 5
void service_stopping(unsigned drain_s);
/* Refresh STATUS= (when it changed) and ping the watchdog (when due).
 * Called from main's loop at least every service_period_ms(). */
void service_tick(struct server *srv);
int service_period_ms(void);

#endif
