/* Rejected: a helper XDP programs may not call
 * ("program of this type cannot use helper"). */
#include "common.h"

SEC("xdp")
__naked int helper_prog_type(void)
{
	asm volatile(
		"call %[bpf_skb_load_bytes];"
		"r0 = 2;"
		"exit;"
	:: __imm(bpf_skb_load_bytes)
	: "memory");
}
