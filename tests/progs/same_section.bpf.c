// SPDX-License-Identifier: GPL-2.0
/*
 * same_section.bpf.c - two programs in the SAME section SEC("xdp").
 *
 * libbpf (>= 0.2) allows several programs per section: each global function
 * symbol of type FUNC in the section is a program, found by its symbol's
 * st_value (offset in the section) and st_size. A reader must not assume
 * "one section = one program". Both also call one static subprogram in
 * .text, so each loaded program gets its own copy of it appended.
 * Both runnable with BPF_PROG_TEST_RUN (XDP): xdp_pass_small passes frames
 * of at most 128 bytes and drops larger ones; xdp_drop_odd drops frames of
 * odd length.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

static __noinline __u32 frame_len(struct xdp_md *ctx)
{
	return ctx->data_end - ctx->data;
}

SEC("xdp")
int xdp_pass_small(struct xdp_md *ctx)
{
	return frame_len(ctx) <= 128 ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int xdp_drop_odd(struct xdp_md *ctx)
{
	return frame_len(ctx) & 1 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
