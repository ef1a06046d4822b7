/* SPDX-License-Identifier: GPL-2.0-only */
/* The PROXY protocol header (versions 1 and 2), parsed incrementally.
 *
 * A load balancer that accepts a client's connection opens its own to us and
 * begins it with one header naming the client.  Version 1 is a text line
 * ("PROXY TCP4 192.0.2.1 198.51.100.1 51000 7\r\n", at most 107 bytes);
 * version 2 a binary block (a 12-byte signature, version and command,
 * family, a length, the addresses, then type-length-value records).  The
 * first byte tells them apart: 'P' or 0x0D.
 *
 * The parser is pure: no socket, no allocation, no clock.  It is fed the
 * bytes as they arrive, in pieces of any size (one byte at a time works), and
 * never takes a byte past the end of the header, so what follows is the
 * client's own data and stays where it is.  It keeps only what it needs: the
 * v1 line (107 bytes), the v2 fixed part and address block (52 bytes) and
 * the state of the TLV walk, never the TLVs themselves, so a 64 KiB v2
 * header costs no more memory than a short one. */
#ifndef ECHOSRV_PROXY_H
#define ECHOSRV_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PROXY_V1_MAX 107		/* the longest valid line, CRLF included */
#define PROXY_V2_FIXED 16		/* signature, version/command, family, length */
#define PROXY_V2_MAX (PROXY_V2_FIXED + 65535)
#define PROXY_UNIQUE_ID_MAX 128		/* the spec's bound for PP2_TYPE_UNIQUE_ID */

enum proxy_result {
	PROXY_MORE,	/* every byte given was taken; the header goes on */
	PROXY_DONE,	/* complete: *used bytes of this piece belonged to it */
	PROXY_BAD,	/* not a valid header: p->reason says why */
};

struct proxy_header {
	uint8_t version;	/* 1 or 2 */
	/* No client address: v2 LOCAL (a balancer's health check), v1
	 * UNKNOWN, or v2 PROXY with family UNSPEC.  The connection is then
	 * served as what it is, one from the balancer. */
	bool local;
	struct sockaddr_storage src, dst;	/* when !local: the client, and
						 * the address it connected to */
	uint8_t unique_id_len;			/* v2 PP2_TYPE_UNIQUE_ID, 0: none */
	uint8_t unique_id[PROXY_UNIQUE_ID_MAX];
	bool crc_checked;			/* a PP2_TYPE_CRC32C matched */
};

struct proxy_parser {
	uint32_t got;		/* header bytes taken so far */
	uint32_t total;		/* v2: the whole header's length, once known */
	uint32_t addr_len;	/* v2: bytes of the address block kept in buf */
	uint8_t buf[PROXY_V1_MAX + 1];	/* v1: the line; v2: fixed part + addresses */
	/* v2 TLV walk over [PROXY_V2_FIXED + addr_len, total) */
	uint8_t tlv_type;
	uint8_t tlv_head;	/* bytes of the current TLV's 3-byte head seen */
	uint16_t tlv_len;	/* its value's length, once the head is complete */
	uint16_t tlv_seen;	/* bytes of its value seen */
	uint32_t crc;		/* CRC32C so far, the checksum field read as zeros */
	uint8_t crc_want[4];
	bool has_crc;
	bool done;
	const char *reason;	/* after PROXY_BAD: one line, no newline */
	struct proxy_header hdr;	/* after PROXY_DONE */
};

void proxy_init(struct proxy_parser *p);

/* Take bytes of data[0, len) as the next part of the header.  PROXY_MORE:
 * all of them were taken; PROXY_DONE: the first *used were, and the rest
 * come after the header; PROXY_BAD: the connection must be closed.  Once
 * DONE or BAD, further calls return the same without taking anything. */
enum proxy_result proxy_feed(struct proxy_parser *p, const uint8_t *data, size_t len,
			     size_t *used);

/* Parse one v1 line, CRLF included, into h.  0, or -EINVAL with *why set. */
int proxy_parse_v1(const char *line, size_t len, struct proxy_header *h, const char **why);

/* CRC32C (Castagnoli), as v2's PP2_TYPE_CRC32C uses: crc of the bytes so far
 * (start with 0), extended by n more. */
uint32_t proxy_crc32c(uint32_t crc, const uint8_t *data, size_t n);

#endif
