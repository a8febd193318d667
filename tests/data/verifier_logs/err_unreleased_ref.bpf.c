/* Rejected: a ring-buffer reservation never submitted ("Unreleased reference"). */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

SEC("xdp")
int unreleased_ref(struct xdp_md *ctx)
{
	__u64 *slot = bpf_ringbuf_reserve(&events, 8, 0);

	if (!slot)
		return XDP_PASS;
	*slot = ctx->rx_queue_index;
	return XDP_PASS;
}
