/* Accepted: two ring-buffer reservations held at once (refs=...), then submitted. */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

SEC("xdp")
int ringbuf(struct xdp_md *ctx)
{
	__u64 *a, *b;

	a = bpf_ringbuf_reserve(&events, 8, 0);
	if (!a)
		return XDP_PASS;
	b = bpf_ringbuf_reserve(&events, 8, 0);
	if (!b) {
		bpf_ringbuf_discard(a, 0);
		return XDP_PASS;
	}
	*a = ctx->rx_queue_index;
	*b = 2;
	bpf_ringbuf_submit(a, 0);
	bpf_ringbuf_submit(b, 0);
	return XDP_PASS;
}
