/* pingpong: one connection, one message in flight; sends SIZE bytes, reads
 * them back, checks them, repeats for SECS seconds and prints messages/s,
 * MB/s and the median round trip.  A small stand-in for echosrv-bench, used
 * to compare engines side by side (see the sockmap figures in the README).
 *
 *   pingpong HOST PORT SIZE SECS */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: pingpong HOST PORT SIZE SECS\n");
		return 2;
	}
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2])) };
	size_t size = strtoul(argv[3], NULL, 0);
	double secs = atof(argv[4]);
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	size_t max_samples = 1 << 22, n = 0;
	float *rtt = malloc(max_samples * sizeof(*rtt));
	uint8_t *out = malloc(size), *in = malloc(size);

	if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1 || !rtt || !out || !in || !size) {
		fprintf(stderr, "pingpong: bad arguments\n");
		return 2;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		perror("pingpong: connect");
		return 1;
	}
	double start = now(), end = start + secs;
	for (double t = start; t < end; n++) {
		for (size_t i = 0; i < size; i += 8)
			out[i] = (uint8_t)(n + i);
		for (size_t off = 0; off < size;) {
			ssize_t r = send(fd, out + off, size - off, 0);
			if (r <= 0) {
				perror("pingpong: send");
				return 1;
			}
			off += (size_t)r;
		}
		for (size_t off = 0; off < size;) {
			ssize_t r = recv(fd, in + off, size - off, 0);
			if (r <= 0) {
				fprintf(stderr, "pingpong: connection lost\n");
				return 1;
			}
			off += (size_t)r;
		}
		if (memcmp(in, out, size)) {
			fprintf(stderr, "pingpong: corrupted echo at message %zu\n", n);
			return 1;
		}
		double t2 = now();
		if (n < max_samples)
			rtt[n] = (float)((t2 - t) * 1e6);
		t = t2;
	}
	double el = now() - start;
	size_t k = n < max_samples ? n : max_samples;
	qsort(rtt, k, sizeof(*rtt), cmp);
	printf("size=%zu msgs=%zu msgs/s=%.0f MB/s=%.1f p50_us=%.1f\n", size, n, (double)n / el,
	       (double)n * (double)size / el / 1e6, k ? rtt[k / 2] : 0.0);
	close(fd);
	return 0;
}
