/* Accepted: a branch refines registers it does not name.  The NULL check on
 * r0 also makes its copy r6 a map_value; the bounds check on r1 also bounds its
 * copy r2; the packet check on r3 also gives r4 (same packet pointer) a range.
 * The kernel does not print those copies at the branch, so the VI map has to
 * apply the same rules. */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} values SEC(".maps");

SEC("xdp")
__naked int branch_copies(void)
{
	asm volatile(
		"r9 = r1;"
		"r1 = 0;"
		"*(u32 *)(r10 - 4) = r1;"
		"r2 = r10;"
		"r2 += -4;"
		"r1 = %[values] ll;"
		"call %[bpf_map_lookup_elem];"
		"r6 = r0;"			/* a copy, same id */
		"if r0 == 0 goto l_out;"
		"r7 = *(u64 *)(r6 + 0);"	/* r6 is a map_value now */
		"call %[bpf_get_prandom_u32];"
		"r1 = r0;"
		"r2 = r1;"			/* linked scalars */
		"if r1 > 7 goto l_out;"
		"r3 = r2;"			/* r2 is at most 7 now */
		"r6 += r3;"
		"r0 = *(u8 *)(r6 + 0);"
		"r3 = *(u32 *)(r9 + 0);"	/* data */
		"r5 = *(u32 *)(r9 + 4);"	/* data_end */
		"r4 = r3;"
		"r3 += 8;"
		"if r3 > r5 goto l_out;"
		"r0 = *(u32 *)(r4 + 4);"	/* r4 learned the range */
	"l_out:"
		"r0 = 2;"
		"exit;"
	:: __imm_addr(values), __imm(bpf_map_lookup_elem), __imm(bpf_get_prandom_u32)
	: "memory");
}
