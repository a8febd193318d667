/* hash_mod_bucket_counter: per-flow packet counters kept in NBUCKETS = 60
 * buckets of one array-map value, indexed by (saddr ^ daddr) % NBUCKETS.
 *
 * Pattern (bcc issue 258, `leaf->flag[flags % NUM_GFP_FLAG]++`, "indeed
 * challenging for verifier"): clang emits `w2 %= 60`.  The 6.18 verifier
 * has no range tracking for BPF_MOD and, for the 32-bit ALU op, does not
 * even keep the zero-extension: the index becomes an unknown 64-bit scalar
 * and `cnt + idx * 8` is "math ... with unbounded min value".
 *
 * Safe: for every 32-bit x, x % 60 is in [0, 59], so cnt[] (60 entries)
 * is never overrun; the packet read is guarded by the iphdr check.
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
int hash_mod_bucket(struct xdp_md *ctx)
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
	b->cnt[h % NBUCKETS]++;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
