/* Accepted: array-map lookup with a NULL check; the key is a masked scalar. */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

SEC("xdp")
int map_lookup(struct xdp_md *ctx)
{
	__u32 key = ctx->ingress_ifindex & 0xff;
	__u64 *value;

	value = bpf_map_lookup_elem(&counters, &key);
	if (!value)
		return XDP_PASS;
	*value += 1;
	return XDP_PASS;
}
