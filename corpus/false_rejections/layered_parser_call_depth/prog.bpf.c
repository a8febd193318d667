/* layered_parser_call_depth: drop TCP SYNs tunnelled in VXLAN, with a
 * parser written as one non-inlined function per protocol layer.
 *
 * Pattern (variation of eunomia-bpf/ActPlane issue 20, where a chain of
 * bpf-to-bpf calls is rejected by a whole-chain limit although each frame
 * is small): the verifier allows at most 8 frames (MAX_CALL_FRAMES); this
 * chain has 9 (program + 8 layers) and is rejected with "the call stack of
 * 9 frames is too deep" although it uses a few bytes of stack and no
 * recursion.  No asm.
 *
 * Safe: each layer checks its header against data_end before reading it;
 * the call chain is fixed and finite (depth 9), the stack use is tiny.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* xdp -> outer eth -> outer ip -> outer udp -> vxlan -> inner eth
 *     -> inner ip -> inner l4 -> tcp flags  (9 frames) */
#define LAYER static __noinline int

LAYER tcp_flags(struct tcphdr *t, void *end)
{
	if ((void *)(t + 1) > end)
		return XDP_PASS;
	return (t->syn && !t->ack) ? XDP_DROP : XDP_PASS;   /* inner SYN */
}
LAYER inner_l4(struct iphdr *ip, void *end)
{
	if (ip->protocol != IPPROTO_TCP)
		return XDP_PASS;
	return tcp_flags((void *)(ip + 1), end);
}
LAYER inner_ip(struct iphdr *ip, void *end)
{
	if ((void *)(ip + 1) > end || ip->ihl != 5)
		return XDP_PASS;
	return inner_l4(ip, end);
}
LAYER inner_eth(struct ethhdr *eth, void *end)
{
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	return inner_ip((void *)(eth + 1), end);
}
LAYER vxlan(__u8 *vx, void *end)
{
	if ((void *)(vx + 8) > end || !(vx[0] & 0x08))       /* VNI valid */
		return XDP_PASS;
	return inner_eth((void *)(vx + 8), end);
}
LAYER outer_udp(struct udphdr *udp, void *end)
{
	if ((void *)(udp + 1) > end || udp->dest != bpf_htons(4789))
		return XDP_PASS;
	return vxlan((void *)(udp + 1), end);
}
LAYER outer_ip(struct iphdr *ip, void *end)
{
	if ((void *)(ip + 1) > end || ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	return outer_udp((void *)(ip + 1), end);
}
LAYER outer_eth(struct ethhdr *eth, void *end)
{
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	return outer_ip((void *)(eth + 1), end);
}

SEC("xdp")
int vxlan_syn_guard(struct xdp_md *ctx)
{
	return outer_eth((void *)(long)ctx->data, (void *)(long)ctx->data_end);
}

char LICENSE[] SEC("license") = "GPL";
