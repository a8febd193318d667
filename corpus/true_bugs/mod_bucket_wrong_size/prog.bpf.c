/* mod_bucket_wrong_size (TRUE BUG): the bucket array was shrunk to 60
 * entries but the index is still computed modulo 64.
 *
 * Unsafe: a flow whose (saddr ^ daddr) % 64 is 60..63 increments
 * cnt[60..63], up to 32 bytes past the 480-byte map value.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

#define NBUCKETS 60

struct buckets {
	__u64 cnt[NBUCKETS];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct buckets);
} flow_buckets SEC(".maps");

SEC("xdp")
int hash_bucket(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u32 key = 0;

	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	struct buckets *b = bpf_map_lookup_elem(&flow_buckets, &key);
	if (!b)
		return XDP_PASS;
	__u32 h = ip->saddr ^ ip->daddr;
	b->cnt[h % 64]++;	/* BUG: % NBUCKETS */
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
