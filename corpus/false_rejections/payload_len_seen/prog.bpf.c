/* payload_len_seen: remember which IPv4 payload lengths were seen, one flag
 * byte per length: seen[tot_len - ihl * 4] = 1.
 *
 * Pattern (foniod/redbpf issue 220: `skb.len - skb.data_len` -- "BPF
 * verifier assume this expression can be a negative value"): the program
 * checks tot_len >= hlen, but the verifier keeps no relation between two
 * registers, so tot_len - hlen is in [-60, 2047] and indexing the map value
 * with it gives "R0 min value is negative".
 *
 * Safe: tot_len <= 2047 and tot_len >= hlen are checked first, so the
 * index is in [0, 2047], inside seen[2048].
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
	__type(value, __u8[2048]);
} seen_len SEC(".maps");

SEC("xdp")
int payload_len(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u32 key = 0;

	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	long tot = bpf_ntohs(ip->tot_len);
	long hlen = ip->ihl * 4;
	if (tot > 2047 || tot < hlen)
		return XDP_DROP;
	__u8 *seen = bpf_map_lookup_elem(&seen_len, &key);
	if (!seen)
		return XDP_PASS;
	seen[tot - hlen] = 1;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
