/* prefix_shift_bucket: count packets per source /plen prefix, plen being a
 * configured prefix length in [1, 8]: bucket = ntohl(saddr) >> (32 - plen).
 *
 * Pattern (kernel-patches/bpf PR 12594 "Non const src shift": the 6.18
 * verifier does not compute bounds for a shift by a non-constant amount):
 * `w6 >>= w7` with w7 in [24, 31] yields an unknown scalar although the
 * result has at most 8 significant bits.
 *
 * Safe: plen is forced into [1, 8], so the shift amount 32 - plen is in
 * [24, 31] and the bucket is < 2^plen <= 256 = entries of cnt[].
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct prefix_cfg {
	__u32 plen;		/* written by user space; 0 = default /8 */
	__u32 pad;
	__u64 cnt[256];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct prefix_cfg);
} prefixes SEC(".maps");

SEC("xdp")
int prefix_bucket(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u32 key = 0;

	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	struct prefix_cfg *c = bpf_map_lookup_elem(&prefixes, &key);
	if (!c)
		return XDP_PASS;
	__u32 plen = c->plen;
	if (plen < 1 || plen > 8)
		plen = 8;
	__u32 bucket = bpf_ntohl(ip->saddr) >> (32 - plen);
	c->cnt[bucket]++;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
