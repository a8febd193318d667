/* Rejected: shift of a pointer ("pointer arithmetic with <<= operator prohibited"). */
#include "common.h"

SEC("xdp")
__naked int ptr_arith_lsh(void)
{
	asm volatile(
		"r2 = r10;"
		"r2 <<= 2;"
		"r0 = 2;"
		"exit;"
	::: "memory");
}
