/* Accepted: bpf-to-bpf calls two deep, passing a pointer to the caller's stack. */
#include "common.h"

static __noinline int leaf(volatile __u64 *p, int x)
{
	volatile __u64 tmp = x;

	*p += tmp;
	return (int)(*p & 0x3);
}

static __noinline int middle(int x)
{
	volatile __u64 acc = 7;

	return leaf(&acc, x) + 1;
}

SEC("xdp")
int bpf2bpf(struct xdp_md *ctx)
{
	int r = middle(ctx->rx_queue_index);

	return r > 2 ? XDP_PASS : XDP_DROP;
}
