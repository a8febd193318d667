/* Rejected: read of a register never written ("R3 !read_ok"). */
#include "common.h"

SEC("xdp")
__naked int read_not_ok(void)
{
	asm volatile(
		"r0 = r3;"
		"exit;"
	::: "memory");
}
