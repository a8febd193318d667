/* ctx_field_ptr_select: the firewall mark to match is taken from a
 * per-interface override map, else from skb->mark.
 *
 * Pattern (iovisor/bcc issue 1133, "Verifier failure on reading ctx"):
 * clang computes the address of the ctx field (`r6 += 8`, &skb->mark) and
 * selects between it and the map value pointer; the single load through the
 * selected pointer is a load from a modified ctx pointer on the default
 * path, which the verifier refuses (it can only rewrite ctx accesses made at
 * a constant offset from the ctx register).  No asm.
 *
 * Safe: the load reads either a non-NULL 4-byte map value or __sk_buff.mark.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#define BLOCKED_MARK 0x42

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);             /* ifindex */
	__type(value, __u32);           /* mark to use instead of skb->mark */
} mark_override SEC(".maps");

SEC("tc")
int mark_filter(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	__u32 *ov = bpf_map_lookup_elem(&mark_override, &ifindex);
	__u32 *src = ov ? ov : &skb->mark;

	return *src == BLOCKED_MARK ? TC_ACT_SHOT : TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
