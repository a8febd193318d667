/* tls_extension_walk: walk up to 16 type/length extensions (TLS style)
 * after a 2-byte count, dropping the packet if one has type 0
 * (server_name).
 *
 * Pattern (Stack Overflow 70760516, "BPF verifier fails because of invalid
 * access to packet": the cursor is advanced by 4 + ntohs(len) per
 * extension): after the first advance the cursor's variable part may reach
 * 65535 and its maximum offset exceeds MAX_PACKET_OFF, so the data_end
 * check inside the loop no longer gives it a range and e->type is
 * "invalid access to packet ... r=0".
 *
 * Safe: every read of an extension header is preceded by the check
 * e + 1 <= data_end on the same pointer.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct ext {
	__be16 type;
	__be16 len;
};

SEC("xdp")
int find_sni(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	void *p = data + sizeof(struct ethhdr);

	if (p + 2 > data_end)
		return XDP_PASS;
	__u16 count = bpf_ntohs(*(__be16 *)p);
	p += 2;
	for (int i = 0; i < 16 && i < count; i++) {
		struct ext *e = p;
		if ((void *)(e + 1) > data_end)
			return XDP_PASS;
		if (e->type == 0)
			return XDP_DROP;
		p += sizeof(*e) + bpf_ntohs(e->len);
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
