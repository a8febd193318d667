// SPDX-License-Identifier: GPL-2.0
/*
 * reject_null_deref.bpf.c - REJECTED by the verifier (a true bug): the
 * result of bpf_map_lookup_elem() is dereferenced without a NULL check.
 *
 * The lookup returns PTR_TO_MAP_VALUE_OR_NULL in R0; any access before a
 * comparison with 0 fails with
 *     R0 invalid mem access 'map_value_or_null'
 * (the register number is whichever register holds the pointer).
 * Repair: insert `if (!v) return ...;` after the lookup.
 * Test material for repair work; XDP, would be runnable if accepted.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

SEC("xdp")
int reject_null_deref(struct xdp_md *ctx)
{
	__u32 key = ctx->rx_queue_index;
	__u64 *v = bpf_map_lookup_elem(&counts, &key);

	*v += 1; /* BUG: v may be NULL */
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
