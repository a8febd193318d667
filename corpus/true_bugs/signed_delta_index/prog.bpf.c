/* signed_delta_index (TRUE BUG): histogram of a signed 8-bit delta read from
 * the packet (here the low byte of the IP id), bounded only from above:
 * `if (delta < 64) hist[delta]++`.
 *
 * Unsafe: a negative delta (byte 0x80..0xff) passes the check and writes
 * before the start of the map value (hist[-128] .. hist[-1]).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u8[64]);
} delta_hist SEC(".maps");

SEC("xdp")
int delta_histogram(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u32 key = 0;

	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	int delta = (__s8)(ip->id >> 8);
	if (delta >= 64)
		return XDP_PASS;
	__u8 *hist = bpf_map_lookup_elem(&delta_hist, &key);
	if (!hist)
		return XDP_PASS;
	hist[delta]++;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
