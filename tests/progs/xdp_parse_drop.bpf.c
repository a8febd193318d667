// SPDX-License-Identifier: GPL-2.0
/*
 * xdp_parse_drop.bpf.c - XDP: parse Ethernet + IPv4 with data/data_end
 * bounds checks and pick XDP_PASS / XDP_DROP from header fields.
 *
 * Exercises: PTR_TO_PACKET / PTR_TO_PACKET_END comparisons (the verifier's
 * packet range tracking), 16-bit loads of a big-endian field compared with
 * bpf_htons(), byte loads, several exits.
 *
 * Verdict: frames too short for Ethernet or (for IPv4) for an IPv4 header
 * are dropped; non-IPv4 frames pass; IPv4 UDP is dropped, IPv4 with
 * ttl <= 1 or ihl < 5 is dropped, everything else passes.
 * Runnable with BPF_PROG_TEST_RUN (XDP).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

SEC("xdp")
int xdp_parse_drop(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;

	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return XDP_DROP;
	if (ip->ihl < 5)
		return XDP_DROP;
	if (ip->protocol == IPPROTO_UDP)
		return XDP_DROP;
	if (ip->ttl <= 1)
		return XDP_DROP;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
