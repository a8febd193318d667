/* ctx_or_map_value_load: a per-packet quota charge that is either a fixed
 * amount configured per interface (map value) or the real skb->len.
 *
 * Pattern (variation of cilium/cilium PR 32169, "fix same insn cannot be
 * used with different pointers"): clang selects the *pointer*
 * (`charge = fixed ? fixed : &skb->len`) and emits a single load
 * `r1 = *(u32 *)(r7 + 0)` where r7 is a map value on one path and the ctx
 * on the other.  The verifier must rewrite ctx loads per instruction, so it
 * refuses one load instruction used with two pointer types.  No asm.
 *
 * Safe: on one path r7 is a non-NULL 4-byte map value, on the other the
 * unmodified ctx pointer (offset 0 is __sk_buff.len); both loads are valid.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#define QUOTA (1ULL << 30)

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);             /* ifindex */
	__type(value, __u32);           /* fixed per-packet charge in bytes */
} fixed_charge SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} bytes_used SEC(".maps");

SEC("tc")
int quota_charge(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex, zero = 0;
	__u32 *fixed = bpf_map_lookup_elem(&fixed_charge, &ifindex);
	/* charge the configured amount, or the real length by default */
	__u32 *charge = fixed ? fixed : &skb->len;
	__u64 *used = bpf_map_lookup_elem(&bytes_used, &zero);

	if (!used)
		return TC_ACT_OK;
	*used += *charge;
	return *used > QUOTA ? TC_ACT_SHOT : TC_ACT_OK;
}
char LICENSE[] SEC("license") = "GPL";
