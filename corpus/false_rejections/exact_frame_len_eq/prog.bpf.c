/* exact_frame_len_eq: handle only unpadded ARP-for-IPv4 frames, recognised
 * by their exact length (Ethernet + 28-byte ARP body ending at data_end),
 * and drop requests for target 0.0.0.0.
 *
 * Pattern (xdp-project/xdp-tutorial issue 218, a loop that stops when
 * `pos + offset == data_end`; variation: the equality is the only length
 * check): the verifier derives packet ranges from <, <=, >, >= compares
 * with data_end only; after `arp + 1 != data_end` fails it still has r=0.
 *
 * Safe: on the fall-through path data + 42 == data_end, so bytes
 * [0, 42) are inside the packet; the reads are at 12..13 and 38..41.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct arp_ipv4 {
	__be16 htype, ptype;
	__u8 hlen, plen;
	__be16 op;
	__u8 sha[6];
	__be32 sip;
	__u8 tha[6];
	__be32 tip;
} __attribute__((packed));

SEC("xdp")
int arp_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct arp_ipv4 *arp = (void *)(eth + 1);

	if ((void *)(arp + 1) != data_end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_ARP))
		return XDP_PASS;
	return arp->tip == 0 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
