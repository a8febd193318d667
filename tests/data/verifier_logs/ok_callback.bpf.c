/* Accepted: bpf_loop with a callback, so callback frames ("cb") appear. */
#include "common.h"

struct loop_ctx {
	__u64 sum;
};

static int step(__u32 index, void *data)
{
	struct loop_ctx *lc = data;

	lc->sum += index;
	return lc->sum > 100;
}

SEC("xdp")
int callback(struct xdp_md *ctx)
{
	struct loop_ctx lc = { .sum = ctx->rx_queue_index & 0xf };

	bpf_loop(8, step, &lc, 0);
	return lc.sum & 1 ? XDP_PASS : XDP_DROP;
}
