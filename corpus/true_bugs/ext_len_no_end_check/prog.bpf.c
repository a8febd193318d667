/* ext_len_no_end_check (TRUE BUG): skip a TLV extension after the UDP
 * header by its 16-bit length and read the byte after it, with no
 * data_end check after the skip.
 *
 * Unsafe: an extension length larger than the rest of the frame (e.g.
 * 1000 in a 60-byte frame) makes the program read past data_end.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct ext {
	__be16 type;
	__be16 len;
};

SEC("xdp")
int skip_extension(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	struct ext *e = (void *)(udp + 1);

	if ((void *)(e + 1) > data_end)
		return XDP_PASS;
	__u8 *p = (void *)(e + 1) + bpf_ntohs(e->len);
	return *p == 0xff ? XDP_DROP : XDP_PASS;	/* BUG: p unchecked */
}

char LICENSE[] SEC("license") = "GPL";
