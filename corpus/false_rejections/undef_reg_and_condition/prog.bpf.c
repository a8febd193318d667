/* undef_reg_and_condition: count packets per source-address bucket and
 * drop DNS traffic from a bucket above a threshold; the UDP destination
 * port is only read (and only meaningful) for UDP packets.
 *
 * Pattern (variation of iovisor/bcc issue 722: a variable left
 * uninitialized on one path reaches a register the verifier reads, "R3 is
 * not inited and verifier complains"): after the map lookup clang reloads
 * ip->protocol and evaluates `proto == UDP && dport == 53` as a bitwise AND
 * of two flags (`w1 &= w7`), reading the dport flag register w7 on the
 * non-UDP path too, where it was never written.  The verifier rejects any
 * read of an uninitialized register ("R7 !read_ok").  No asm.
 *
 * Safe: on the non-UDP path the other AND operand is 0, so the garbage in
 * r7 cannot influence the result; all packet reads are bounds-checked and
 * the bucket index is 0..255 in a 256-entry array.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);             /* low byte of the source address */
	__type(value, __u64);
} src_pkts SEC(".maps");

SEC("xdp")
int dns_src_limit(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	__u16 dport;              /* only meaningful for UDP */

	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *udp = (void *)(ip + 1);
		if ((void *)(udp + 1) > data_end)
			return XDP_PASS;
		dport = udp->dest;
	}
	__u32 key = bpf_ntohl(ip->saddr) & 0xff;
	__u64 *cnt = bpf_map_lookup_elem(&src_pkts, &key);
	if (!cnt)
		return XDP_PASS;
	*cnt += 1;
	if (ip->protocol == IPPROTO_UDP && dport == bpf_htons(53) && *cnt > 100)
		return XDP_DROP;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
