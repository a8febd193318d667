// SPDX-License-Identifier: GPL-2.0
/*
 * tc_skb_fields.bpf.c - tc classifier (SEC("tc"), libbpf >= 1.0 name) that
 * reads __sk_buff fields and writes skb->mark.
 *
 * Exercises: context loads with offsets that the verifier rewrites
 * (skb->len, skb->protocol, skb->mark), a context store (skb->mark),
 * bpf_skb_load_bytes into a stack buffer (helper with PTR_TO_STACK + size
 * arguments) and the helper's negative error return.
 *
 * mark := 0x100 | ip->protocol for IPv4 frames longer than 100 bytes,
 * mark := mark + ip->protocol for shorter IPv4 frames; other frames untouched.
 * Runnable with BPF_PROG_TEST_RUN (sched_cls); returns TC_ACT_OK, or
 * TC_ACT_SHOT if the IPv4 header cannot be read.
 */
#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

SEC("tc")
int tc_skb_fields(struct __sk_buff *skb)
{
	struct iphdr iph;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &iph, sizeof(iph)) < 0)
		return TC_ACT_SHOT;

	if (skb->len > 100)
		skb->mark = 0x100 | iph.protocol;
	else
		skb->mark = skb->mark + iph.protocol;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
