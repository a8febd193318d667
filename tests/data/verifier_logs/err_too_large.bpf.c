/* Rejected: a loop the verifier has to walk a million times
 * ("BPF program is too large. Processed 1000001 insn"). Its log is kept short
 * by the kernel's rotating log buffer (see regen.py): only the tail remains. */
#include "common.h"

SEC("xdp")
int too_large(struct xdp_md *ctx)
{
	__u64 sum = ctx->rx_queue_index;

#pragma clang loop unroll(disable)
	for (__u32 i = 0; i < 1000000; i++)
		sum = sum * 31 + i;
	return sum & 1 ? XDP_PASS : XDP_DROP;
}
