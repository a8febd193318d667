/* Rejected: variable offset in [-128, 127] ("R6 min value is negative"). */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} values SEC(".maps");

SEC("xdp")
__naked int min_negative(void)
{
	asm volatile(
		"r1 = 0;"
		"*(u32 *)(r10 - 4) = r1;"
		"r2 = r10;"
		"r2 += -4;"
		"r1 = %[values] ll;"
		"call %[bpf_map_lookup_elem];"
		"if r0 == 0 goto l_out;"
		"r6 = r0;"
		"call %[bpf_get_prandom_u32];"
		"r0 &= 0xff;"
		"r0 += -128;"			/* -128 .. 127 */
		"r6 += r0;"
		"r0 = *(u8 *)(r6 + 0);"
	"l_out:"
		"r0 = 2;"
		"exit;"
	:: __imm_addr(values), __imm(bpf_map_lookup_elem), __imm(bpf_get_prandom_u32)
	: "memory");
}
