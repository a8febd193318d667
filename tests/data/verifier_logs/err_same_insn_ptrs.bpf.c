/* Rejected: one load reached with a ctx pointer and a stack pointer
 * ("same insn cannot be used with different pointers"). */
#include "common.h"

SEC("xdp")
__naked int same_insn_ptrs(void)
{
	asm volatile(
		"r6 = r1;"
		"r1 = 0;"
		"*(u64 *)(r10 - 8) = r1;"
		"call %[bpf_get_prandom_u32];"
		"r1 = r6;"
		"if r0 == 0 goto l_load;"
		"r1 = r10;"
		"r1 += -8;"
	"l_load:"
		"r0 = *(u32 *)(r1 + 0);"
		"r0 = 2;"
		"exit;"
	:: __imm(bpf_get_prandom_u32)
	: "memory");
}
