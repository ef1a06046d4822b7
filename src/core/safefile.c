/* SPDX-License-Identifier: GPL-2.0-only */
/* Creating files by path without trusting the path; see safefile.h.
 *
 * Everything is done relative to a descriptor of the parent directory, so
 * the checks made on the directory hold for the entries created in it even
 * if a path component is swapped meanwhile. */
#include "core/safefile.h"

#include <fcntl.h>
#include <linux/limits.h>	/* PATH_MAX, NAME_MAX (src/limits.h shadows <limits.h>) */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"

#define TMP_TRIES 8

/* Why the last call in this thread refused its path (see safefile.h). */
static __thread char refusal[256];

const char *safefile_refusal(void)
{
	return refusal[0] ? refusal : NULL;
}

/* Note why path is refused; returns err for the caller to pass on. */
__attribute__((format(printf, 2, 3)))
static int refuse(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(refusal, sizeof(refusal), fmt, ap);
	va_end(ap);
	return err;
}

/* The parent directory of path, checked, as an O_PATH descriptor (or
 * -errno); *base points at the last component inside path. */
static int open_dir(const char *path, const char **base)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	struct stat st;
	int dfd;

	*base = slash ? slash + 1 : path;
	if (!**base)
		return -EISDIR;
	if (!slash)
		strcpy(dir, ".");
	else if (slash == path)
		strcpy(dir, "/");
	else if ((size_t)(slash - path) >= sizeof(dir))
		return -ENAMETOOLONG;
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return ERR();
	if (fstat(dfd, &st)) {
		int r = ERR();
		close(dfd);
		return r;
	}
	/* Root's directories and our own are trusted; another user could
	 * rename entries in theirs under our feet. */
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		close(dfd);
		return refuse(-EPERM, "its directory %s belongs to uid %u", dir,
			      (unsigned)st.st_uid);
	}
	/* Without the sticky bit anyone may rename or remove entries. */
	if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX)) {
		close(dfd);
		return refuse(-EPERM, "its directory %s is writable by everyone and not sticky",
			      dir);
	}
	return dfd;
}

/* Whatever is at base already must be a file of ours (or nothing), and a
 * regular one when it is to be replaced: rename() would put the port file
 * in place of a device node (/dev/null), a FIFO or the control socket, and
 * the exit would then unlink it.  Appending (the trace file) may go to any
 * of them but a directory, which open() refuses by itself. */
static int check_existing(int dfd, const char *path, const char *base, bool root_ok,
			  bool regular)
{
	struct stat st;

	if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW))
		return errno == ENOENT ? 0 : ERR();
	if (S_ISLNK(st.st_mode))
		return refuse(-ELOOP, "it is a symbolic link (owner uid %u)", (unsigned)st.st_uid);
	if (st.st_uid != geteuid() && !(root_ok && st.st_uid == 0))
		return refuse(-EPERM, "it belongs to uid %u", (unsigned)st.st_uid);
	if (regular && S_ISDIR(st.st_mode))
		return refuse(-EISDIR, "it is a directory");
	if (regular && !S_ISREG(st.st_mode))
		return refuse(-EEXIST, "it is not a regular file (a device, FIFO or socket "
			      "would be replaced)");
	/* open() fails on a socket with ENXIO, as on a FIFO with no reader:
	 * say which it is here, where --check says it too. */
	if (S_ISSOCK(st.st_mode))
		return refuse(-ENXIO, "it is a socket (open() cannot write to one)");
	return 0;
}

/* A new file with an unguessable name next to the target. */
static int create_tmp(int dfd, const char *base, char *tmp, size_t len)
{
	for (int i = 0; i < TMP_TRIES; i++) {
		unsigned long long rnd;
		if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
			return -EAGAIN;
		if (snprintf(tmp, len, ".%s.%016llx", base, rnd) >= (int)len)
			return -ENAMETOOLONG;
		int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd >= 0 || errno != EEXIST)
			return fd >= 0 ? fd : ERR();
	}
	return -EEXIST;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return ERR();
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The longest name the port file may have: its temporary file beside it
 * is "." NAME "." and 16 hex digits (create_tmp()). */
#define REPLACE_NAME_MAX (NAME_MAX - 18)

int safefile_check(const char *path, bool append)
{
	const char *base;
	struct stat st;
	int dfd, r;

	refusal[0] = '\0';
	if ((dfd = open_dir(path, &base)) < 0)
		return dfd;
	r = check_existing(dfd, path, base, append, !append);
	if (!r && !append && strlen(base) > REPLACE_NAME_MAX)
		r = refuse(-ENAMETOOLONG, "its name is longer than %d bytes (a temporary file "
			   "is written beside it and renamed)", REPLACE_NAME_MAX);
	/* open() would refuse a directory by itself; say so before then. */
	if (!r && append && !fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) && S_ISDIR(st.st_mode))
		r = refuse(-EISDIR, "it is a directory");
	close(dfd);
	return r;
}

int safefile_replace(const char *path, const void *data, size_t len, struct safefile *f)
{
	refusal[0] = '\0';
	char tmp[NAME_MAX + 1];
	const char *base;
	struct stat st;
	int dfd, fd, r;

	f->made = false;
	if ((dfd = open_dir(path, &base)) < 0)
		return dfd;
	if ((r = check_existing(dfd, path, base, false, true)))
		goto out;
	if ((fd = create_tmp(dfd, base, tmp, sizeof(tmp))) < 0) {
		r = fd;
		goto out;
	}
	r = write_all(fd, data, len);
	if (!r && fstat(fd, &st))
		r = ERR();
	if (close(fd) && !r)
		r = ERR();
	/* rename() replaces the entry itself and never follows a link, so
	 * whatever appeared at base since the check is replaced, not written
	 * through. */
	if (!r && renameat(dfd, tmp, dfd, base))
		r = ERR();
	if (r) {
		unlinkat(dfd, tmp, 0);
		goto out;
	}
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->made = true;
out:
	close(dfd);
	return r;
}

/* ENXIO from open() is a FIFO without a reader, a socket put there since
 * check_existing() or a device node with no driver: only the first is
 * named so.  errno is kept for the others. */
static bool is_fifo(int dfd, const char *base)
{
	int e = errno;
	struct stat st;
	bool fifo = !fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) && S_ISFIFO(st.st_mode);

	errno = e;
	return fifo;
}

int safefile_open_append(const char *path, mode_t mode)
{
	const char *base;
	struct stat st;
	int dfd, fd, r;

	refusal[0] = '\0';
	if ((dfd = open_dir(path, &base)) < 0) {
		errno = -dfd;
		return -1;
	}
	/* A file owned by root is fine for a non-root server: root made it
	 * writable for us (a log file, /dev/null). */
	r = check_existing(dfd, path, base, true, false);
	/* O_NONBLOCK: a FIFO that no one reads would block the open until a
	 * reader came (a start-up that hangs without a word); it fails with
	 * ENXIO instead.  Writes block again, as the trace writer expects. */
	fd = r ? -1 : openat(dfd, base, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_NOCTTY |
				 O_CLOEXEC | O_NONBLOCK, mode);
	if (fd < 0 && !r) {
		if (errno == ELOOP)
			r = refuse(-ELOOP, "it is a symbolic link");
		else if (errno == ENXIO && is_fifo(dfd, base))
			r = refuse(-ENXIO, "it is a FIFO that no process reads");
		else
			r = ERR();
	}
	if (fd >= 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)) {
		r = ERR();
		close(fd);
		fd = -1;
	}
	/* The check above raced with whoever may write the directory: look at
	 * what was actually opened. */
	if (fd >= 0 && !fstat(fd, &st) && st.st_uid != geteuid() && st.st_uid != 0) {
		r = refuse(-EPERM, "it belongs to uid %u", (unsigned)st.st_uid);
		close(fd);
		fd = -1;
	}
	close(dfd);
	if (fd < 0)
		errno = -r;
	return fd;
}

void safefile_remove(const char *path, struct safefile *f)
{
	struct stat st;

	if (!f->made)
		return;
	f->made = false;
	if (!lstat(path, &st) && st.st_dev == f->dev && st.st_ino == f->ino)
		unlink(path);
}
