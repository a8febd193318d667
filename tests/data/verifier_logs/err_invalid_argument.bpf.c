/* Rejected: a scalar where the helper wants a map ("R1 type=scalar expected=map_ptr"). */
#include "common.h"

SEC("xdp")
__naked int invalid_argument(void)
{
	asm volatile(
		"r1 = 0;"
		"*(u32 *)(r10 - 4) = r1;"
		"r2 = r10;"
		"r2 += -4;"
		"call %[bpf_map_lookup_elem];"
		"r0 = 2;"
		"exit;"
	:: __imm(bpf_map_lookup_elem)
	: "memory");
}
