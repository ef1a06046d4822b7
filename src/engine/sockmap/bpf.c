/* SPDX-License-Identifier: GPL-2.0-only */
/* Loading the embedded BPF object; see engine/sockmap/bpf.h. */
#include "engine/sockmap/bpf.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/capability.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/trace.h"

/* The object file, included at build time (mk/sockmap.mk passes its path);
 * .incbin keeps it byte for byte, as libbpf needs. */
__asm__(".pushsection .rodata\n"
	".balign 8\n"
	".globl sm_bpf_image\n"
	"sm_bpf_image:\n"
	".incbin \"" SM_BPF_OBJ "\"\n"
	".globl sm_bpf_image_end\n"
	"sm_bpf_image_end:\n"
	".popsection\n");
extern const char sm_bpf_image[], sm_bpf_image_end[];

/* libbpf's own messages (the verifier log on a failed load) go to the INFO
 * trace; the failure itself is reported by the caller. */
static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[512];

	if (level == LIBBPF_DEBUG || !trace_on(TR_INFO))
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	trace_emit(TR_INFO, "%s", line);
	return 0;
}

static int size_map(struct sm_bpf *b, const char *name, uint32_t entries)
{
	struct bpf_map *m = bpf_object__find_map_by_name(b->obj, name);

	if (!m)
		return -ENOENT;
	return bpf_map__set_max_entries(m, entries) ? -EINVAL : 0;
}

/* Loading needs CAP_BPF and CAP_NET_ADMIN (a networking program), and
 * CAP_PERFMON too, because the program reads the socket's send queue
 * through BTF (bpf_skc_to_tcp_sock), which the verifier allows only then.
 * CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON.  Checked first so
 * that the message names what is missing instead of a verifier error. */
static bool has_cap(const struct __user_cap_data_struct *d, int cap)
{
	return d[cap / 32].effective & (1u << (cap % 32));
}

static int check_caps(char *err, size_t errlen)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];
	char missing[80] = "";
	bool admin;

	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d))
		return 0;	/* cannot tell: let the kernel decide */
	admin = has_cap(d, CAP_SYS_ADMIN);
	if (!has_cap(d, CAP_NET_ADMIN))
		strcat(missing, " CAP_NET_ADMIN");
	if (!admin && !has_cap(d, CAP_BPF))
		strcat(missing, " CAP_BPF");
	if (!admin && !has_cap(d, CAP_PERFMON))
		strcat(missing, " CAP_PERFMON");
	if (!missing[0])
		return 0;
	snprintf(err, errlen, "the sockmap engine needs root, or CAP_BPF, CAP_NET_ADMIN and "
		 "CAP_PERFMON (it loads eBPF programs); this process lacks%s; "
		 "use --engine epoll or io_uring otherwise", missing);
	return -EPERM;
}

static int explain(int r, const char *what, char *err, size_t errlen)
{
	if (r == -EPERM || r == -EACCES)
		snprintf(err, errlen,
			 "%s: %s (the sockmap engine needs root, or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON)",
			 what, strerror(-r));
	else
		snprintf(err, errlen, "%s: %s (the sockmap engine needs a kernel with BPF "
			 "sockmap and BTF)", what, strerror(-r));
	return r;
}

int sm_bpf_open(struct sm_bpf *b, uint32_t entries, char *err, size_t errlen)
{
	static const char *const names[] = { "socks", "state", "ctl" };
	int *fds[] = { &b->socks_fd, &b->state_fd, &b->ctl_fd };
	struct bpf_program *prog;
	int r;

	memset(b, 0, sizeof(*b));
	b->socks_fd = b->state_fd = b->ctl_fd = b->events_fd = -1;
	if ((r = check_caps(err, errlen)))
		return r;
	libbpf_set_print(libbpf_log);
	b->obj = bpf_object__open_mem(sm_bpf_image, (size_t)(sm_bpf_image_end - sm_bpf_image),
				      NULL);
	if (!b->obj) {
		r = -errno;
		b->obj = NULL;
		return explain(r, "cannot open the BPF object", err, errlen);
	}
	for (unsigned i = 0; i < 3; i++)
		if ((r = size_map(b, names[i], entries ? entries : 1)))
			return explain(r, "BPF object has no expected map", err, errlen);
	if ((r = bpf_object__load(b->obj)))
		return explain(r, "cannot load the BPF programs", err, errlen);
	for (unsigned i = 0; i < 3; i++)
		*fds[i] = bpf_object__find_map_fd_by_name(b->obj, names[i]);
	b->events_fd = bpf_object__find_map_fd_by_name(b->obj, "events");
	prog = bpf_object__find_program_by_name(b->obj, "echo_verdict");
	if (!prog || b->events_fd < 0)
		return explain(-ENOENT, "BPF object is incomplete", err, errlen);
	/* The SOCKHASH holds the program: no link, no pin, gone with the map. */
	if (bpf_prog_attach(bpf_program__fd(prog), b->socks_fd, BPF_SK_SKB_STREAM_VERDICT, 0))
		return explain(-errno, "cannot attach the verdict program", err, errlen);
	return 0;
}

void sm_bpf_close(struct sm_bpf *b)
{
	if (b->obj)
		bpf_object__close(b->obj);	/* closes every map and program fd */
	memset(b, 0, sizeof(*b));
	b->socks_fd = b->state_fd = b->ctl_fd = b->events_fd = -1;
}
