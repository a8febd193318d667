/* aligned_u64_spill: a bounded class index (tos >> 2, 0..63) kept in a
 * `volatile __u64` across a map lookup, then used as an array index.
 *
 * Pattern (facebook/bpfilter PR 197: "Older BPF verifier can not keep
 * [track] of the scalar values stored on the stack"): the value is spilled
 * to an 8-byte aligned slot with an 8-byte store; Linux 6.18 keeps the
 * spilled scalar's bounds and accepts.  Contrast stack_key_field_spill and
 * volatile_len_reread (4-byte spill at fp-4: still rejected).  Kept as
 * verdict = "accept".
 *
 * Safe: the slot holds tos >> 2, in [0, 63]; v[] has 64 entries.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64[64]);
} class_cnt SEC(".maps");

SEC("xdp")
int class_counter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u32 key = 0;

	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	volatile __u64 idx = ip->tos >> 2;
	__u64 *v = bpf_map_lookup_elem(&class_cnt, &key);
	if (!v)
		return XDP_PASS;
	v[idx]++;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
