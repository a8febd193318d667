// SPDX-License-Identifier: GPL-2.0
/*
 * bpf_loop_cb.bpf.c - callbacks: bpf_loop() and bpf_for_each_map_elem().
 *
 * Exercises: a static function passed as a callback pointer, which clang
 * emits as ld_imm64 with src_reg = BPF_PSEUDO_FUNC (a relocation against
 * .text); the verifier checks the callback with its own frame and a
 * PTR_TO_STACK callback_ctx; bpf_loop with a packet-derived iteration count;
 * bpf_for_each_map_elem over a BTF-defined array map (callback receives map,
 * key, value, ctx); results written to .bss.
 * Runnable with BPF_PROG_TEST_RUN (XDP): loop_sum := sum(i * 3, i < len % 32),
 * elem_sum := sum of all values in `weights`; returns XDP_PASS.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct loop_ctx {
	__u64 sum;
	__u32 mul;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} weights SEC(".maps");

__u64 loop_sum;
__u64 elem_sum;
__u32 elem_seen;

static int loop_cb(__u32 idx, void *data)
{
	struct loop_ctx *c = data;

	c->sum += (__u64)idx * c->mul;
	return 0; /* 0: continue, 1: break */
}

static long elem_cb(void *map, __u32 *key, __u64 *val, void *data)
{
	struct loop_ctx *c = data;

	c->sum += *val;
	c->mul++;
	return 0;
}

SEC("xdp")
int bpf_loop_cb(struct xdp_md *ctx)
{
	struct loop_ctx lc = { .sum = 0, .mul = 3 };
	struct loop_ctx ec = { .sum = 0, .mul = 0 };
	__u32 n = (ctx->data_end - ctx->data) % 32;

	bpf_loop(n, loop_cb, &lc, 0);
	loop_sum = lc.sum;

	bpf_for_each_map_elem(&weights, elem_cb, &ec, 0);
	elem_sum = ec.sum;
	elem_seen = ec.mul;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
