/* reload_ctx_data_after_lookup: bounds-check the UDP header at a variable
 * L4 offset, do a map lookup, then re-derive the header pointer from
 * ctx->data + l4off (as a helper function taking the offset would) and
 * record the destination port.
 *
 * Pattern (Stack Overflow 73088287, "I checked the length of payload ...
 * But I can't pass the verifier": the checked pointer and the dereferenced
 * one are different registers): the reload of ctx->data after the helper
 * call gives a fresh packet pointer, and adding the variable l4off gives
 * it a new id with r=0, so the earlier data_end check does not cover it.
 *
 * Safe: XDP data and data_end do not change across bpf_map_lookup_elem,
 * and data + l4off + 8 <= data_end was checked with the same l4off.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>

struct port_stats {
	__u64 pkts;
	__u64 last_dport;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct port_stats);
} udp_stats SEC(".maps");

SEC("xdp")
int udp_last_port(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u32 key = 0;

	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	if (ip->protocol != IPPROTO_UDP || ip->ihl < 5)
		return XDP_PASS;
	__u32 l4off = sizeof(*eth) + ip->ihl * 4;
	if (data + l4off + sizeof(struct udphdr) > data_end)
		return XDP_PASS;
	struct port_stats *st = bpf_map_lookup_elem(&udp_stats, &key);
	if (!st)
		return XDP_PASS;
	struct udphdr *udp = (void *)(long)ctx->data + l4off;
	st->pkts++;
	st->last_dport = udp->dest;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
