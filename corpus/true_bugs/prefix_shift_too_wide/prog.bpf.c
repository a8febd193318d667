/* prefix_shift_too_wide (TRUE BUG): per-/plen source-prefix counters with
 * 256 buckets, plen taken from the DSCP bits and bounded by 16 instead of
 * 8.
 *
 * Unsafe: plen = 16 (tos = 0x40) gives bucket = saddr >> 16, up to 65535,
 * far past cnt[256] (10.0.0.1 gives bucket 2560).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64[256]);
} prefix_cnt SEC(".maps");

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
	__u32 plen = ip->tos >> 2;
	if (plen < 1 || plen > 16)	/* BUG: 256 buckets allow plen <= 8 */
		return XDP_PASS;
	__u64 *cnt = bpf_map_lookup_elem(&prefix_cnt, &key);
	if (!cnt)
		return XDP_PASS;
	cnt[bpf_ntohl(ip->saddr) >> (32 - plen)]++;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
