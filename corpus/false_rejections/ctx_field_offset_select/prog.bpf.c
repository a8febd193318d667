/* ctx_field_offset_select: a configurable classification key read from one
 * of several __sk_buff fields.
 *
 * Pattern (elastic/ebpf PR 177, "dereference of modified ctx ptr with
 * clang16"): clang -O2 sinks the four loads of the switch into one load and
 * turns the switch into a choice of field offset, so the program does
 * `r6 += r1; r1 = *(u32 *)(r6 + 0)`.  The verifier only allows ctx loads at
 * a constant offset from the unmodified ctx pointer (it rewrites each field
 * access), and rejects.  No asm: this is what clang-19 emits for plain C.
 *
 * Safe: every path reads one real __sk_buff field (mark, priority,
 * queue_mapping or ifindex) with a 4-byte load; key is masked to 0..255 and
 * counts has 256 entries.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);           /* which field to classify on */
} cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

SEC("tc")
int classify(struct __sk_buff *skb)
{
	__u32 zero = 0, key;
	__u32 *sel = bpf_map_lookup_elem(&cfg, &zero);

	if (!sel)
		return TC_ACT_OK;
	switch (*sel) {
	case 0: key = skb->mark; break;
	case 1: key = skb->priority; break;
	case 2: key = skb->queue_mapping; break;
	default: key = skb->ifindex; break;
	}
	key &= 0xff;
	__u64 *c = bpf_map_lookup_elem(&counts, &key);
	if (c)
		__sync_fetch_and_add(c, 1);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
