// SPDX-License-Identifier: GPL-2.0
/*
 * reject_unbounded_index.bpf.c - REJECTED by the verifier (a true bug):
 * a map value is indexed with skb->mark, a full-range 32-bit value, without
 * an upper-bound check, so the access may fall outside the 16-slot value.
 *
 * The variable offset reaches 8 * (2^32 - 1), beyond BPF_MAX_VAR_OFF, and
 * the verifier says
 *     R? unbounded memory access, make sure to bounds check any such access
 * Repair: `if (idx >= NSLOTS) return ...;` (or idx &= NSLOTS - 1).
 * Test material for repair work; tc (SEC("tc")).
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#define NSLOTS 16

struct slots {
	__u64 slot[NSLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct slots);
} table SEC(".maps");

SEC("tc")
int reject_unbounded_index(struct __sk_buff *skb)
{
	__u32 key = 0, idx = skb->mark;
	struct slots *s = bpf_map_lookup_elem(&table, &key);

	if (!s)
		return TC_ACT_OK;
	s->slot[idx] += skb->len; /* BUG: idx is not checked against NSLOTS */
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
