/* payload_len_unchecked (TRUE BUG): flag each IPv4 payload length seen,
 * seen[tot_len - ihl * 4] = 1, checking tot_len <= 2047 but not
 * tot_len >= ihl * 4.
 *
 * Unsafe: a header with tot_len = 10 and ihl = 5 gives index -10 and the
 * program writes 10 bytes before the map value.
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
	if (tot > 2047)		/* BUG: tot < hlen not rejected */
		return XDP_DROP;
	__u8 *seen = bpf_map_lookup_elem(&seen_len, &key);
	if (!seen)
		return XDP_PASS;
	seen[tot - hlen] = 1;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
