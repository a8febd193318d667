/* Rejected: read past the end of struct xdp_md ("invalid bpf_context access"). */
#include "common.h"

SEC("xdp")
int ctx_access(struct xdp_md *ctx)
{
	return ((volatile __u32 *)ctx)[20] ? XDP_PASS : XDP_DROP;
}
