/* Rejected: map value used without a NULL check ("invalid mem access 'map_value_or_null'"). */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} table SEC(".maps");

SEC("xdp")
int mem_access_null(struct xdp_md *ctx)
{
	__u32 key = 1;
	__u64 *value = bpf_map_lookup_elem(&table, &key);

	return *value & 1 ? XDP_PASS : XDP_DROP;
}
