/* pkt_len_scalar_compare: check the frame length as a number,
 * len = data_end - data, against the size of the headers, then read the
 * IPv4 protocol field.
 *
 * Pattern (xdp-project/xdp-tutorial issue 218: clang turns
 * `pos + offset == data_end` into a compare of the scalar
 * data_end - data, and the program is rejected): the verifier derives
 * packet ranges only from a pointer compared with data_end, never from
 * the scalar difference, so the packet pointer keeps r=0.
 *
 * Safe: len >= 34 means data + 34 <= data_end, and the protocol byte is
 * data[23].
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int drop_icmp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 len = data_end - data;

	if (len < sizeof(struct ethhdr) + sizeof(struct iphdr))
		return XDP_PASS;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	return ip->protocol == IPPROTO_ICMP ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
