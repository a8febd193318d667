/* ntohs_port_counter: one counter byte per UDP destination port, indexed by
 * bpf_ntohs(udp->dest) in a 65536-byte map value.
 *
 * Pattern (kernel-patches/bpf commit 9d2119984224 "bpf: Add bitwise
 * tracking for BPF_END"): before it, `r1 = be16 r1` left an unknown scalar
 * and the index was unbounded; Linux 6.18 tracks the byte swap (the
 * value stays in [0, 65535]) and accepts.  Kept as verdict = "accept".
 *
 * Safe: a 16-bit port is < 65536 = size of hits[].
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct port_hits {
	__u8 hits[65536];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct port_hits);
} port_hits SEC(".maps");

SEC("xdp")
int port_counter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	__u32 key = 0;

	if ((void *)(udp + 1) > data_end)
		return XDP_PASS;
	struct port_hits *p = bpf_map_lookup_elem(&port_hits, &key);
	if (!p)
		return XDP_PASS;
	p->hits[bpf_ntohs(udp->dest)]++;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
