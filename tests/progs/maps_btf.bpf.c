// SPDX-License-Identifier: GPL-2.0
/*
 * maps_btf.bpf.c - one XDP program using four kinds of BTF-defined maps.
 *
 * Exercises (all in ".maps", described by BTF):
 *   BPF_MAP_TYPE_HASH          per-source-address counters: lookup, then
 *                              update(BPF_NOEXIST) on a miss
 *   BPF_MAP_TYPE_ARRAY         configuration (slot 0: sample every Nth)
 *   BPF_MAP_TYPE_PERCPU_ARRAY  per-CPU totals
 *   BPF_MAP_TYPE_RINGBUF       sampled events: bpf_ringbuf_reserve then
 *                              bpf_ringbuf_submit, or bpf_ringbuf_discard
 * and map-value pointers kept in callee-saved registers across helper calls.
 * Runnable with BPF_PROG_TEST_RUN (XDP); always returns XDP_PASS.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct src_stat {
	__u64 packets;
	__u64 bytes;
};

struct event {
	__u32 saddr;
	__u32 len;
	__u64 seq;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct src_stat);
} by_src SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} sample_every SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} totals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} samples SEC(".maps");

SEC("xdp")
int maps_btf(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 len = data_end - data, zero = 0, saddr = 0, every = 1, *cfg;
	struct ethhdr *eth = data;
	struct src_stat *st, init = {};
	struct event *ev;
	__u64 *tot, seq = 0;

	if ((void *)(eth + 1) <= data_end && eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) <= data_end)
			saddr = ip->saddr;
	}

	st = bpf_map_lookup_elem(&by_src, &saddr);
	if (!st) {
		bpf_map_update_elem(&by_src, &saddr, &init, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&by_src, &saddr);
	}
	if (st) {
		__sync_fetch_and_add(&st->packets, 1); /* no fetch: fine for v2 */
		st->bytes += len;
		seq = st->packets;
	}

	tot = bpf_map_lookup_elem(&totals, &zero);
	if (tot)
		*tot += len;

	cfg = bpf_map_lookup_elem(&sample_every, &zero);
	if (cfg && *cfg)
		every = *cfg;

	ev = bpf_ringbuf_reserve(&samples, sizeof(*ev), 0);
	if (!ev)
		return XDP_PASS;
	if (seq % every) {
		bpf_ringbuf_discard(ev, 0);
		return XDP_PASS;
	}
	ev->saddr = saddr;
	ev->len = len;
	ev->seq = seq;
	bpf_ringbuf_submit(ev, 0);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
