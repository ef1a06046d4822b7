/* SPDX-License-Identifier: GPL-2.0-only */
/* bench-baseline-udp: the plainest fast UDP echo, the yardstick for
 * echosrv's UDP cells.  One thread, one socket, recvmmsg of up to 32
 * datagrams and one sendmmsg of the same buffers back to their sources;
 * no guards, no pktinfo, no counters.  Prints "udp:ADDR:PORT" once bound
 * (to stdout), then serves until killed.
 *
 *   bench-baseline-udp 127.0.0.1 0 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 32
#define SIZE 65536

static struct mmsghdr in[BATCH], out[BATCH];
static struct iovec iov[BATCH], oiov[BATCH];
static struct sockaddr_storage src[BATCH];
static char bufs[BATCH][SIZE];

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	if (argc != 3 || inet_pton(AF_INET, argv[1], &a.sin_addr) != 1) {
		fprintf(stderr, "usage: bench-baseline-udp IPv4 PORT\n");
		return 2;
	}
	a.sin_port = htons((uint16_t)atoi(argv[2]));
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(fd, (struct sockaddr *)&a, &len)) {
		perror("bench-baseline-udp");
		return 1;
	}
	printf("udp:%s:%u\n", argv[1], ntohs(a.sin_port));
	fflush(stdout);
	for (;;) {
		for (int i = 0; i < BATCH; i++) {
			iov[i] = (struct iovec){ bufs[i], SIZE };
			in[i].msg_hdr = (struct msghdr){ .msg_name = &src[i], .msg_namelen = sizeof(src[i]),
							 .msg_iov = &iov[i], .msg_iovlen = 1 };
		}
		int n = recvmmsg(fd, in, BATCH, MSG_WAITFORONE, NULL);
		if (n <= 0)
			continue;
		for (int i = 0; i < n; i++) {
			oiov[i] = (struct iovec){ bufs[i], in[i].msg_len };
			out[i].msg_hdr = (struct msghdr){ .msg_name = &src[i],
							  .msg_namelen = in[i].msg_hdr.msg_namelen,
							  .msg_iov = &oiov[i], .msg_iovlen = 1 };
		}
		for (int done = 0, s; done < n; done += s > 0 ? s : 1)
			s = sendmmsg(fd, out + done, (unsigned)(n - done), MSG_DONTWAIT);
	}
}
