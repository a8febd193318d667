/* null_value_udp_path (TRUE BUG): per-source counters in a hash map; the
 * NULL check after the lookup is done on the TCP path only.
 *
 * Unsafe: the first UDP packet from a source that is not in the map (any
 * UDP packet with the map empty) dereferences the NULL value pointer.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} src_pkts SEC(".maps");

SEC("xdp")
int count_sources(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);

	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	__u32 saddr = ip->saddr;
	__u64 *cnt = bpf_map_lookup_elem(&src_pkts, &saddr);
	if (ip->protocol == IPPROTO_TCP && !cnt)
		return XDP_PASS;
	*cnt += 1;		/* BUG: NULL on the UDP path */
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
