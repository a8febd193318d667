/* ttl_index_off_by_one (TRUE BUG): per-TTL counters for TTL 0..63, with the
 * bound written as `ttl > 64` instead of `ttl >= 64`.
 *
 * Unsafe: a packet with TTL 64 (the most common initial TTL) increments
 * cnt[64], 8 bytes past the end of the 512-byte map value.
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
} ttl_cnt SEC(".maps");

SEC("xdp")
int ttl_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u32 key = 0;

	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	__u32 ttl = ip->ttl;
	if (ttl > 64)
		return XDP_PASS;
	__u64 *cnt = bpf_map_lookup_elem(&ttl_cnt, &key);
	if (!cnt)
		return XDP_PASS;
	cnt[ttl]++;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
