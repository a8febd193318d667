/* Rejected: packet read without a bounds check ("invalid access to packet"). */
#include "common.h"
#include <linux/if_ether.h>

SEC("xdp")
int packet_access(struct xdp_md *ctx)
{
	struct ethhdr *eth = (void *)(long)ctx->data;

	return eth->h_proto == bpf_htons(ETH_P_IP) ? XDP_PASS : XDP_DROP;
}
