/* ip_version_hdr_len: dispatch on the IP version nibble, then validate an
 * IPv4 header by its own length field only (ihl * 4 >= 20 and
 * l3 + ihl * 4 <= data_end) and read the destination address.
 *
 * Pattern (variation of the header-length checks discussed in
 * xdp-project/xdp-tutorial PR 96, parse by `hdr->ihl * 4` / `doff * 4`
 * with a `len < sizeof(h)` sanity check): the only check covering the
 * header is made on l3 + hlen, a pointer with a variable offset and its
 * own id; the verifier gives no range to l3 itself from it (it is still
 * r=15 from the one-byte version check), so ip->daddr at l3 + 16 is
 * "invalid access to packet".
 *
 * Safe: hlen >= 20 and l3 + hlen <= data_end, so l3[0..19] is inside the
 * packet; daddr is l3[16..19].
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int ip_dispatch(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *l3 = data + sizeof(struct ethhdr);

	if ((void *)(l3 + 1) > data_end)
		return XDP_PASS;
	__u8 vihl = *l3;
	if ((vihl >> 4) != 4)
		return XDP_PASS;	/* IPv6 and the rest: elsewhere */
	__u32 hlen = (vihl & 0x0f) * 4;
	if (hlen < sizeof(struct iphdr))
		return XDP_DROP;
	if ((void *)l3 + hlen > data_end)
		return XDP_DROP;
	struct iphdr *ip = (void *)l3;
	return ip->daddr == 0xffffffff ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
