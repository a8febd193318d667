/* pow2_round_down_loop: round a configured RX-queue group size down to a
 * power of two by clearing the lowest set bit until one bit is left, then
 * keep only the first queue of each group.
 *
 * Pattern (the limit described in LWN's "BPF loop verification with scalar
 * evolution": the verifier evaluates a loop iteration by iteration and can
 * hit the instruction limit where a better analysis would not).  Here each
 * round of `n &= n - 1` only lowers the verifier's upper bound of n by one
 * (umax 0xffffffff, 0xfffffffe, ...), so it never sees the loop end and
 * stops with "BPF program is too large. Processed 1000001 insn".  No asm.
 *
 * Safe: every round clears one set bit of a 32-bit value, so the loop runs
 * at most 31 times; there is no memory access in it.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);           /* queues per group */
} group_size SEC(".maps");

SEC("xdp")
int queue_pick(struct xdp_md *ctx)
{
	__u32 zero = 0, *cfg, n;

	cfg = bpf_map_lookup_elem(&group_size, &zero);
	if (!cfg)
		return XDP_PASS;
	n = *cfg;
	/* clear the lowest set bit until at most one is left */
	while (n & (n - 1))
		n &= n - 1;
	/* n is 0 (no grouping: all queues pass) or a power of two */
	if (n && (ctx->rx_queue_index & (n - 1)))
		return XDP_DROP;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
