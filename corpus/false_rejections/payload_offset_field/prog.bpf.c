/* payload_offset_field: a tunnel-like header right after Ethernet carries a
 * 16-bit offset to its payload; check that 4 payload bytes are present and
 * read them.
 *
 * Pattern (cloudflare/cbpfc PR 25, "The verifier does not allow packet
 * offsets greater than 2^16 / 0xFFFF"): the cursor h + 4 + off has a
 * variable part up to 65535 and a fixed part of 18, so its maximum offset
 * exceeds MAX_PACKET_OFF (0xffff); the verifier then refuses to give it a
 * range from the data_end compare and the read is "invalid access to
 * packet ... r=0".
 *
 * Safe: the 4-byte read is at pl, and pl + 4 <= data_end was checked on
 * that very pointer.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct tun_hdr {
	__be16 magic;
	__be16 payload_off;
};

SEC("xdp")
int tun_payload(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct tun_hdr *h = data + sizeof(struct ethhdr);

	if ((void *)(h + 1) > data_end)
		return XDP_PASS;
	__u32 off = bpf_ntohs(h->payload_off);
	__u8 *pl = (void *)(h + 1) + off;
	if ((void *)(pl + 4) > data_end)
		return XDP_DROP;
	return *(__u32 *)pl == 0 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
