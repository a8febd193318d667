/* fnv_unrolled: an FNV-1a hash over the first ROUNDS bytes of the packet, the
 * loop unrolled by clang (each round checks the packet end, loads a byte, xors
 * and multiplies), then a per-bucket counter in an array map. Written for the
 * proof benchmark (benchmarks/prove.py): ROUNDS=160 gives a program of about a
 * thousand instructions, with a path per round that leaves the loop early. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#ifndef ROUNDS
#define ROUNDS 160
#endif

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} buckets SEC(".maps");

SEC("xdp")
int fnv_unrolled(struct xdp_md *ctx)
{
	__u8 *p = (__u8 *)(long)ctx->data;
	__u8 *end = (__u8 *)(long)ctx->data_end;
	__u32 h = 2166136261u;
	__u32 key;
	__u64 *count;

#pragma clang loop unroll(full)
	for (int i = 0; i < ROUNDS; i++) {
		if (p + i + 1 > end)
			break;
		h = (h ^ p[i]) * 16777619u;
	}
	key = h & 63;
	count = bpf_map_lookup_elem(&buckets, &key);
	if (count)
		*count += 1;
	return h & 1 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
