/* div_histogram_unclamped (TRUE BUG): a length histogram with 16 slots of
 * 100 bytes, slot = tot_len / 100, without clamping tot_len first.
 *
 * Unsafe: tot_len is a 16-bit field the sender chooses; tot_len = 2000
 * gives slot 20 and up to 65535 gives slot 655, far past slot[16].
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct hist {
	__u64 slot[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hist);
} len_hist SEC(".maps");

SEC("xdp")
int len_histogram(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u32 key = 0;

	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	struct hist *h = bpf_map_lookup_elem(&len_hist, &key);
	if (!h)
		return XDP_PASS;
	__u32 len = bpf_ntohs(ip->tot_len);	/* BUG: not clamped to 1599 */
	h->slot[len / 100]++;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
