/* stale_pkt_ptr_after_adjust_tail: strip the 4-byte Ethernet FCS from
 * frames that still carry it, then swap the MAC addresses and bounce the
 * frame, reusing the Ethernet header pointer checked before the trim.
 *
 * Pattern (variation of xdp-project/xdp-tutorial issue 216, quoting the
 * helper documentation: after bpf_xdp_adjust_tail() "all checks on pointers
 * previously done by the verifier are invalidated and must be performed
 * again"): the verifier turns every packet pointer into an unknown scalar
 * after any helper that may change packet data, so the later accesses
 * through `eth` fail with "invalid mem access 'scalar'".  No asm.
 *
 * Safe: data does not move; the tail is only trimmed when the frame has at
 * least 64 bytes, so at least 60 bytes remain and the 14-byte Ethernet
 * header checked before the call is still inside the packet.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int strip_fcs_bounce(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;
	__u8 tmp[ETH_ALEN];

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	/* frames of 64 bytes or more still carry their 4-byte FCS */
	if (data_end - data >= 64 && bpf_xdp_adjust_tail(ctx, -4))
		return XDP_ABORTED;
	__builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
