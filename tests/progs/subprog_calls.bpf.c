// SPDX-License-Identifier: GPL-2.0
/*
 * subprog_calls.bpf.c - XDP program split into BPF-to-BPF calls.
 *
 * Exercises:
 *  - static __noinline functions (BPF_PSEUDO_CALL, verified in the caller's
 *    context, packet pointers passed as arguments), nested two deep;
 *  - a global (non-static) __noinline function taking a scalar, and one
 *    taking the context pointer: global functions are verified separately
 *    with only their BTF signature known (FUNC linkage "global" in BTF);
 *  - callee-saved registers R6-R9 kept across calls, R1-R5 arguments, R0
 *    return value, per-frame stacks.
 * Subprograms live in .text; libbpf appends them to the program and patches
 * the call offsets. Runnable with BPF_PROG_TEST_RUN (XDP): drops IPv4
 * packets with a TTL < 2 or protocol 0xfd (RFC 3692 experimental), and
 * frames shorter than 64 bytes.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Global function, scalar argument: verified once, independently. */
__noinline int proto_verdict(__u32 proto)
{
	return proto == 0xfd ? XDP_DROP : XDP_PASS;
}

/* Global function, context argument (PTR_TO_CTX from the BTF prototype). */
__noinline int frame_too_short(struct xdp_md *ctx)
{
	return ctx->data_end - ctx->data < 64;
}

static __noinline int ttl_ok(struct iphdr *ip, void *data_end)
{
	if ((void *)(ip + 1) > data_end)
		return 0;
	return ip->ttl >= 2;
}

/* Returns the IPv4 protocol, or -1. Calls ttl_ok (call depth 2). */
static __noinline int ipv4_proto(void *data, void *data_end)
{
	struct ethhdr *eth = data;
	struct iphdr *ip;

	if ((void *)(eth + 1) > data_end)
		return -1;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return -1;
	ip = (void *)(eth + 1);
	if (!ttl_ok(ip, data_end))
		return -2;
	return ip->protocol;
}

SEC("xdp")
int subprog_calls(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	int proto;

	if (frame_too_short(ctx))
		return XDP_DROP;
	proto = ipv4_proto(data, data_end);
	if (proto == -2)
		return XDP_DROP;
	if (proto < 0)
		return XDP_PASS;
	return proto_verdict(proto);
}

char LICENSE[] SEC("license") = "GPL";
