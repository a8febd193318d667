// SPDX-License-Identifier: GPL-2.0
/*
 * reject_loop_states.bpf.c - REJECTED although SAFE (a false rejection of
 * the "inaccurate limit calculation" family): a bounded 64-iteration loop
 * over packet bytes whose counter is later used as a map-value index.
 *
 * Using `zeros` as an index makes the verifier mark it precise, so states
 * that differ only in the zero count are never pruned: every byte doubles
 * the number of paths (2^64), and verification stops with
 *     BPF program is too large. Processed 1000001 insn
 * (about 1.7 s of verifier time per load on the reference machine).
 * The program is memory safe: the index is reduced modulo 16 and every
 * packet byte is bounds checked. loop_bounded.bpf.c is the same loop with
 * the counter only stored, which the verifier accepts.
 * Repair ideas: clamp the index through a path the verifier cannot make
 * precise, widen the counter, or hoist the index computation.
 * XDP; would be runnable with BPF_PROG_TEST_RUN if accepted.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define SCAN 64
#define HIST 16

struct history {
	__u32 slot[HIST];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct history);
} zero_hist SEC(".maps");

SEC("xdp")
int reject_loop_states(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct history *h;
	__u32 zeros = 0, key = 0;
	int i;

#pragma clang loop unroll(disable)
	for (i = 0; i < SCAN; i++) {
		unsigned char *p = data + i;

		if ((void *)(p + 1) > data_end)
			break;
		if (*p == 0)
			zeros++;
	}

	h = bpf_map_lookup_elem(&zero_hist, &key);
	if (h)
		h->slot[zeros % HIST]++; /* precise index -> no state pruning */
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
