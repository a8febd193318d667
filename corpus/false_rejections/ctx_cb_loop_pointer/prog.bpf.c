/* ctx_cb_loop_pointer: sum the per-stage scores that earlier programs of a
 * tc chain left in skb->cb[] and drop above a threshold.
 *
 * Pattern (falcosecurity/libs PR 317: "clang tries to modify the ctx ptr
 * ... when we access [a ctx field] inside the for loop"; also
 * bpftrace/bpftrace PR 2008, "ctx+8 is OK, but ctx+4+4 is NOT"): with the
 * loop kept as a loop, clang hoists `&skb->cb[0]` (`r1 += 48`) and indexes
 * from it, so each load is a dereference of a modified ctx pointer, which
 * the verifier refuses.  The `unroll(disable)` pragma only keeps the loop a
 * loop, as code-size conscious programs do; the codegen is clang's.
 *
 * Safe: i runs over 0..4 and cb[] has 5 entries; every load is a 4-byte
 * read of a real __sk_buff.cb[i] field.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int cb_score(struct __sk_buff *skb)
{
	__u32 score = 0;

#pragma clang loop unroll(disable)
	for (int i = 0; i < 5; i++)
		score += skb->cb[i];
	return score > 100 ? TC_ACT_SHOT : TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
