/* l4_check_without_size (TRUE BUG): validate the TCP header by checking
 * that its start is inside the packet (`l4 > data_end`), not its end.
 *
 * Unsafe: a TCP packet that ends right after the IPv4 header (34 bytes)
 * passes the check; reading the flags byte at l4 + 13 reads 14 bytes past
 * data_end.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int syn_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);

	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	if (ip->protocol != IPPROTO_TCP || ip->ihl < 5)
		return XDP_PASS;
	__u8 *l4 = (void *)ip + ip->ihl * 4;
	if ((void *)l4 > data_end)	/* BUG: should be l4 + 20 */
		return XDP_DROP;
	__u8 flags = l4[13];
	return flags == 0x02 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
