// SPDX-License-Identifier: GPL-2.0
/*
 * xdp_map_counter.bpf.c - XDP packet counter in a BTF-defined array map,
 * indexed by the IPv4 protocol number (slot 0 for non-IPv4 frames).
 *
 * Exercises: BTF-defined map in ".maps" (BPF_MAP_TYPE_ARRAY, __uint/__type),
 * ld_imm64 map relocation (BPF_PSEUDO_MAP_FD), bpf_map_lookup_elem with a
 * stack key, NULL check of the result, __sync_fetch_and_add whose result is
 * unused (BPF_ATOMIC BPF_ADD without BPF_FETCH, i.e. the old XADD, valid
 * for -mcpu=v2), and a plain load/add/store on the same value.
 * Runnable with BPF_PROG_TEST_RUN (XDP); always returns XDP_PASS.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct proto_stats {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct proto_stats);
} proto_count SEC(".maps");

SEC("xdp")
int xdp_map_counter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct proto_stats *st;
	__u32 key = 0;

	if ((void *)(eth + 1) <= data_end && eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) <= data_end)
			key = ip->protocol;
	}

	st = bpf_map_lookup_elem(&proto_count, &key);
	if (!st)
		return XDP_PASS;
	__sync_fetch_and_add(&st->packets, 1);
	st->bytes += (__u64)(data_end - data);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
