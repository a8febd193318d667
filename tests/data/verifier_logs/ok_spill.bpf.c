/* Accepted: spills and fills of pointers, constants and bounded scalars. */
#include "common.h"

SEC("xdp")
__naked int spill(void)
{
	asm volatile(
		"*(u64 *)(r10 - 8) = r1;"	/* spill ctx */
		"r6 = 42;"
		"*(u64 *)(r10 - 16) = r6;"	/* spill a constant */
		"r2 = *(u32 *)(r1 + 16);"	/* rx_queue_index */
		"r2 &= 0xff;"
		"*(u64 *)(r10 - 24) = r2;"	/* spill a bounded scalar */
		"*(u32 *)(r10 - 32) = 0;"	/* half-slot zero store */
		"r3 = r10;"
		"r3 += -24;"			/* pointer to the stack */
		"r1 = *(u64 *)(r10 - 8);"	/* fill ctx */
		"r4 = *(u64 *)(r10 - 24);"	/* fill the scalar */
		"r5 = *(u64 *)(r3 + 0);"	/* fill through a stack pointer */
		"r0 = *(u32 *)(r1 + 4);"
		"r0 = r4;"
		"r0 &= 1;"
		"r0 += 1;"
		"exit;"
	::: "memory");
}
