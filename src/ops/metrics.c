/* SPDX-License-Identifier: GPL-2.0-only */
/* The --metrics endpoint's pages: /metrics (metrics_render.c), /healthz
 * and /readyz (health.h), and / listing them.  The HTTP side, with its
 * bounds on scrapers, is metrics_http.c.
 *
 * A probe's answer is built from a few atomic loads: a load balancer or a
 * Kubernetes probe may poll as often as it likes without touching the
 * workers.  Each answer's body is one line that says why. */
#include "ops/metrics.h"

#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/trace.h"
#include "core/util.h"
#include "ops/health.h"
#include "ops/metrics_http.h"
#include "ops/procmetrics.h"
#include "server/server.h"

#define CT_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define CT_TEXT "text/plain; charset=utf-8"

static struct server *msrv;

static const char index_page[] =
	"echosrv " ECHOSRV_VERSION "\n"
	"/metrics  Prometheus metrics (text format 0.0.4)\n"
	"/healthz  200 while every worker loop turns, 503 otherwise\n"
	"/readyz   200 while accepting connections; 503 while starting, draining or paused\n";

static enum MHD_Result reply(struct MHD_Connection *mc, unsigned code, const char *ctype,
			     char *body, size_t len)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);

	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	/* Probes and scrapes must see the state now, never a cached one. */
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	/* A 405 must say which methods are allowed (RFC 9110, 15.5.6). */
	if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	enum MHD_Result ret = MHD_queue_response(mc, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *mc, unsigned code, const char *text)
{
	char *body = strdup(text);

	return body ? reply(mc, code, CT_TEXT, body, strlen(body)) : MHD_NO;
}

/* /healthz and /readyz: 200 or 503 with the one-line reason. */
static enum MHD_Result probe(struct MHD_Connection *mc,
			     bool (*check)(struct server *, char *, size_t))
{
	char why[200];
	bool ok = check(msrv, why, sizeof(why) - 1);

	strcat(why, "\n");
	return reply_text(mc, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, why);
}

static enum MHD_Result metrics_page(struct MHD_Connection *mc)
{
	struct sbuf b = { .max = 1u << 20 };
	size_t len;

	metrics_render(msrv, &b);
	char *text = sbuf_take(&b, &len);
	if (!text)
		return reply_text(mc, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	return reply(mc, MHD_HTTP_OK, CT_METRICS, text, len);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_len, void **state)
{
	if (*upload_len) {	/* a body we do not want: discard it */
		*upload_len = 0;
		return MHD_YES;
	}
	bool known = !strcmp(url, "/metrics") || !strcmp(url, "/healthz") ||
		     !strcmp(url, "/readyz") || !strcmp(url, "/");
	if (!known)
		return reply_text(mc, MHD_HTTP_NOT_FOUND, "not found; see / for the endpoints\n");
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return reply_text(mc, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET or HEAD\n");
	if (!strcmp(url, "/healthz"))
		return probe(mc, health_alive);
	if (!strcmp(url, "/readyz"))
		return probe(mc, health_ready);
	if (!strcmp(url, "/"))
		return reply_text(mc, MHD_HTTP_OK, index_page);
	return metrics_page(mc);
}

int metrics_start(struct server *srv, const struct listen_addr *addr, char *err, size_t errlen)
{
	char text[ADDR_TEXT_MAX], why[200];
	struct sockaddr_storage bound = addr->ss;
	uint16_t port;
	int r;

	msrv = srv;
	if ((r = procmetrics_open()))
		TRACE(TR_ERROR, "metrics: cannot open /proc/self: %s; process_* metrics left out",
		      strerror(-r));
	addr_format((const struct sockaddr *)&addr->ss, text, sizeof(text));
	if ((r = mhttp_start(addr, on_request, &port, why, sizeof(why)))) {
		snprintf(err, errlen, "--metrics: cannot serve on %s: %s", text, why);
		procmetrics_close();
		return r;
	}
	/* The port sits at the same offset in sockaddr_in and sockaddr_in6. */
	((struct sockaddr_in *)&bound)->sin_port = htons(port);
	addr_format((const struct sockaddr *)&bound, text, sizeof(text));
	log_notice("metrics at http://%s/metrics (also /healthz, /readyz)", text);
	return 0;
}

void metrics_stop(void)
{
	mhttp_stop();
	procmetrics_close();
}

const char *metrics_lib_version(void)
{
	return mhttp_lib_version();
}
