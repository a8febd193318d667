// SPDX-License-Identifier: GPL-2.0
/*
 * reject_pkt_no_bounds.bpf.c - REJECTED by the verifier (a true bug): reads
 * the Ethernet type and the IPv4 protocol without comparing against
 * data_end first.
 *
 * A packet pointer starts with range r=0, so the first load fails with
 *     invalid access to packet, off=13 size=1, R1(id=0,off=13,r=0)
 *     R1 offset is outside of the packet
 * (struct ethhdr is packed, so clang reads h_proto as two byte loads and
 * the first one the verifier sees is at offset 13).
 * Repair: `if (data + sizeof(struct ethhdr) + sizeof(struct iphdr) >
 * data_end) return XDP_DROP;` before the loads.
 * Test material for repair work; XDP.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

SEC("xdp")
int reject_pkt_no_bounds(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);

	/* BUG: no check against ctx->data_end */
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	return ip->protocol == IPPROTO_UDP ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
