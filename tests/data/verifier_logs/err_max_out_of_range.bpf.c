/* Rejected: variable offset whose maximum runs past the map value
 * ("R6 max value is outside of the allowed memory range"). */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} values SEC(".maps");

SEC("xdp")
int max_out_of_range(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u8 *value = bpf_map_lookup_elem(&values, &key);
	__u32 idx = bpf_get_prandom_u32() & 0xff;

	if (!value)
		return XDP_PASS;
	return value[idx] ? XDP_PASS : XDP_DROP;
}
