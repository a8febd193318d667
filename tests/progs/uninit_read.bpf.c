// SPDX-License-Identifier: GPL-2.0
/*
 * uninit_read.bpf.c - XDP: reads a stack variable that only some packets
 * initialize (a bug privileged programs get away with: the verifier lets
 * root read uninitialized stack).
 *
 * Exercises: a stack load whose bytes are written on one path only (the
 * msan pass must check it at run time) next to a stack load written on
 * every path (msan proves it and adds nothing). `volatile` keeps clang from
 * folding the undefined read away.
 *
 * Verdict: frames whose first byte is 2 (the sample packet's) set v = 3 and
 * pass; other frames read v uninitialized: XDP_PASS or XDP_DROP depending on
 * stack garbage (the interpreter's zeros give XDP_DROP).
 * Runnable with BPF_PROG_TEST_RUN (XDP).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int uninit_read(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *p = data;
	volatile __u64 v;
	volatile __u32 base = 8;

	if ((void *)(p + 1) > data_end)
		return XDP_DROP;
	if (p[0] == 2)
		v = 3;
	return (v + base) & 1 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
