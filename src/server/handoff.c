/* SPDX-License-Identifier: GPL-2.0-only */
/* The hand-off queue of socket activation; see handoff.h. */
#include "server/handoff.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

int handoff_init(struct handoff *h)
{
	memset(h, 0, sizeof(*h));
	return -pthread_mutex_init(&h->lock, NULL);
}

void handoff_close(struct handoff *h)
{
	pthread_mutex_lock(&h->lock);
	h->closed = true;
	for (unsigned i = 0; i < h->n; i++)
		close(h->fds[i]);
	h->n = 0;
	atomic_store_explicit(&h->pending, false, memory_order_relaxed);
	pthread_mutex_unlock(&h->lock);
}

bool handoff_seal(struct handoff *h)
{
	bool sealed;

	pthread_mutex_lock(&h->lock);
	sealed = h->n == 0;
	if (sealed)
		h->closed = true;
	pthread_mutex_unlock(&h->lock);
	return sealed;
}

void handoff_fini(struct handoff *h)
{
	handoff_close(h);
	pthread_mutex_destroy(&h->lock);
}

int handoff_push(struct handoff *h, int fd)
{
	int r = 0;

	pthread_mutex_lock(&h->lock);
	if (h->closed)
		r = -EPIPE;
	else if (h->n == HANDOFF_MAX)
		r = -EAGAIN;
	else
		h->fds[h->n++] = fd;
	if (!r)
		atomic_store_explicit(&h->pending, true, memory_order_relaxed);
	pthread_mutex_unlock(&h->lock);
	return r;
}

unsigned handoff_take(struct handoff *h, int *out, unsigned max)
{
	unsigned n;

	pthread_mutex_lock(&h->lock);
	n = h->n < max ? h->n : max;
	memcpy(out, h->fds, n * sizeof(*out));
	memmove(h->fds, h->fds + n, (h->n - n) * sizeof(*out));
	h->n -= n;
	atomic_store_explicit(&h->pending, h->n > 0, memory_order_relaxed);
	pthread_mutex_unlock(&h->lock);
	return n;
}
