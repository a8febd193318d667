/* Rejected: load through ctx + constant ("dereference of modified ctx ptr"). */
#include "common.h"

SEC("xdp")
__naked int modified_ctx(void)
{
	asm volatile(
		"r1 += 4;"
		"r0 = *(u32 *)(r1 + 0);"
		"exit;"
	::: "memory");
}
