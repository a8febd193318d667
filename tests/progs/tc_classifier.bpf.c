// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tc_classifier.bpf.c - tc program in the legacy SEC("classifier") section
 * that drops IPv4 packets whose source address is in a BTF-defined hash map
 * (a blocklist), counting hits, and sets skb->priority for the others.
 *
 * Exercises: the "classifier" section name (BPF_PROG_TYPE_SCHED_CLS),
 * BPF_MAP_TYPE_HASH lookup keyed by a value read with bpf_skb_load_bytes
 * at a constant offset, atomic increment of a hash value, a context store to
 * skb->priority, and the "Dual BSD/GPL" license string (GPL compatible).
 * Runnable with BPF_PROG_TEST_RUN (sched_cls): TC_ACT_SHOT for blocked
 * sources, TC_ACT_OK otherwise.
 */
#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);   /* IPv4 source address, network byte order */
	__type(value, __u64); /* hits */
} blocklist SEC(".maps");

SEC("classifier")
int tc_classifier(struct __sk_buff *skb)
{
	__u32 saddr;
	__u64 *hits;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + offsetof(struct iphdr, saddr),
			       &saddr, sizeof(saddr)) < 0)
		return TC_ACT_OK;

	hits = bpf_map_lookup_elem(&blocklist, &saddr);
	if (hits) {
		__sync_fetch_and_add(hits, 1);
		return TC_ACT_SHOT;
	}
	skb->priority = 7;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
