/* Rejected: two frames of 320 bytes each ("combined stack size of 2 calls is ... Too large"). */
#include "common.h"

static __noinline int fill(int seed)
{
	volatile char buf[320];

	for (int i = 0; i < 320; i += 64)
		buf[i] = seed + i;
	return buf[seed & 63];
}

SEC("xdp")
int stack_too_large(struct xdp_md *ctx)
{
	volatile char buf[320];

	buf[0] = ctx->rx_queue_index;
	return fill(buf[0]) + buf[ctx->rx_queue_index & 63] ? XDP_PASS : XDP_DROP;
}
