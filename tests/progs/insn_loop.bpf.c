// SPDX-License-Identifier: GPL-2.0
/*
 * insn_loop.bpf.c - XDP: a bounded loop whose trip count comes from the
 * packet, the insn_counter pass's target.
 *
 * Exercises: a back-edge (unrolling disabled) that runs min(data[0], TRIPS)
 * times, with a data_end check on every iteration, summing the bytes that
 * follow the first. The sum stays a register value the verifier cannot
 * know (packet bytes), so it never defeats state pruning.
 * TRIPS is small on purpose: `epass prove --unroll 8` still follows every
 * path of the loop to its end.
 *
 * Verdict: XDP_DROP when the summed bytes exceed 600, else XDP_PASS (the
 * sample packet: n = 2, both bytes 0, XDP_PASS); XDP_ABORTED for an empty
 * frame. Runnable with BPF_PROG_TEST_RUN (XDP).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define TRIPS 6

SEC("xdp")
int insn_loop(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;
	unsigned char *data_end = (void *)(long)ctx->data_end;
	__u32 n, sum = 0;
	int i;

	if (data + 1 > data_end)
		return XDP_ABORTED;
	n = data[0];
#pragma clang loop unroll(disable)
	for (i = 0; i < TRIPS && i < n; i++) {
		unsigned char *p = data + 1 + i;

		if (p + 1 > data_end)
			break;
		sum += *p;
	}
	return sum > 600 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
