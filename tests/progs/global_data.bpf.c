// SPDX-License-Identifier: GPL-2.0
/*
 * global_data.bpf.c - XDP filter configured through global variables.
 *
 * Exercises all three global-data sections, each of which libbpf turns into
 * a one-element array map referenced by ld_imm64 BPF_PSEUDO_MAP_VALUE with
 * an offset:
 *   .rodata  const volatile config (frozen map; the verifier knows the values
 *            and prunes dead branches), plus a const table read with a
 *            bounded variable index;
 *   .data    initialised, writable (default_verdict);
 *   .bss     zero-initialised counters.
 * Drops frames shorter than cfg_min_len and IPv4 frames whose protocol is
 * cfg_block_proto (ICMP by default); otherwise returns default_verdict.
 * Runnable with BPF_PROG_TEST_RUN (XDP).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* .rodata */
const volatile __u8 cfg_block_proto = IPPROTO_ICMP;
const volatile __u32 cfg_min_len = 60;
const __u8 proto_weight[4] = { 1, 2, 4, 8 };

/* .data */
__u32 default_verdict = XDP_PASS;

/* .bss */
__u64 seen_packets;
__u64 seen_bytes;
__u64 blocked;
__u64 weight_sum;

SEC("xdp")
int global_data(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 len = data_end - data;
	struct ethhdr *eth = data;
	struct iphdr *ip;

	seen_packets++;
	seen_bytes += len;
	if (len < cfg_min_len) {
		blocked++;
		return XDP_DROP;
	}
	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return default_verdict;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return default_verdict;
	weight_sum += proto_weight[ip->tos & 3];
	if (ip->protocol == cfg_block_proto) {
		blocked++;
		return XDP_DROP;
	}
	return default_verdict;
}

char LICENSE[] SEC("license") = "GPL";
