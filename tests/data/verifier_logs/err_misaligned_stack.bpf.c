/* Rejected: 8-byte store at fp-4 ("misaligned stack access"). */
#include "common.h"

SEC("xdp")
__naked int misaligned_stack(void)
{
	asm volatile(
		"r1 = 0;"
		"*(u64 *)(r10 - 12) = r1;"
		"r0 = 2;"
		"exit;"
	::: "memory");
}
