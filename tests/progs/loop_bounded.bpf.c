// SPDX-License-Identifier: GPL-2.0
/*
 * loop_bounded.bpf.c - bounded loops that clang keeps as loops (unrolling
 * disabled), so the bytecode contains back-edges the verifier must explore
 * (bounded-loop support, kernel >= 5.3).
 *
 * Exercises: a back-edge over packet bytes with a per-iteration data_end
 * check through a variable-offset packet pointer, and a second back-edge
 * over a map-value array with a constant trip count; a map-value pointer
 * live across both loops.
 * The zero-byte counter is kept in the map value, not in a register: a
 * register counter would be a known constant on every path, the final
 * comparison would make it precise, and the verifier could not prune the
 * 2^64 paths (see reject_loop_states.bpf.c, which does exactly that).
 * Drops frames whose first 64 bytes (or fewer, if shorter) contain more than
 * 48 zero bytes; otherwise XDP_PASS. The second loop stores a checksum of
 * the `slot` array in .bss (hist_xor). Runnable with BPF_PROG_TEST_RUN (XDP).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define SCAN 64
#define HIST 16

struct scan_state {
	__u32 zeros;
	__u32 slot[HIST];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scan_state);
} scan SEC(".maps");

__u32 hist_xor;

SEC("xdp")
int loop_bounded(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct scan_state *st;
	__u32 x = 0, key = 0;
	int i;

	st = bpf_map_lookup_elem(&scan, &key);
	if (!st)
		return XDP_PASS;

	st->zeros = 0;
#pragma clang loop unroll(disable)
	for (i = 0; i < SCAN; i++) {
		unsigned char *p = data + i;

		if ((void *)(p + 1) > data_end)
			break;
		if (*p == 0)
			st->zeros++;
	}

#pragma clang loop unroll(disable)
	for (i = 0; i < HIST; i++)
		x ^= st->slot[i] + i;
	hist_xor = x;

	return st->zeros > 48 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
