// SPDX-License-Identifier: GPL-2.0
/*
 * xdp_rewrite.bpf.c - XDP reflector that rewrites the packet: swaps the
 * Ethernet source and destination MAC addresses and, for IPv4, decrements
 * the TTL with an incremental header-checksum update; returns XDP_TX.
 *
 * Exercises: packet stores (so BPF_PROG_TEST_RUN's data_out differs from
 * data_in), 6-byte memcpy lowered to narrow loads/stores, 16-bit
 * read-modify-write of a packet field.
 *
 * The checksum update follows ip_decrease_ttl() in the Linux kernel's
 * include/net/ip.h (RFC 1624 style incremental update).
 * Runnable with BPF_PROG_TEST_RUN (XDP). Frames with ttl <= 1 are dropped,
 * non-IPv4 frames are reflected with only the MACs swapped.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

static __always_inline void swap_macs(struct ethhdr *eth)
{
	unsigned char tmp[ETH_ALEN];

	__builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
}

static __always_inline void ip_decrease_ttl(struct iphdr *iph)
{
	__u32 check = (__u32)iph->check;

	check += (__u32)bpf_htons(0x0100);
	iph->check = (__u16)(check + (check >= 0xFFFF));
	iph->ttl--;
}

SEC("xdp")
int xdp_rewrite(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;

	swap_macs(eth);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_TX;

	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return XDP_DROP;
	if (ip->ttl <= 1)
		return XDP_DROP;
	ip_decrease_ttl(ip);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
