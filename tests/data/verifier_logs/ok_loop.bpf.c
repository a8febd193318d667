/* Accepted: a bounded loop the verifier walks iteration by iteration. */
#include "common.h"

SEC("xdp")
int loop(struct xdp_md *ctx)
{
	__u32 sum = 0;
	__u32 n = ctx->rx_queue_index;

#pragma clang loop unroll(disable)
	for (int i = 0; i < 8; i++) {
		sum += n * i;
		n ^= sum;
	}
	return sum & 1 ? XDP_PASS : XDP_DROP;
}
