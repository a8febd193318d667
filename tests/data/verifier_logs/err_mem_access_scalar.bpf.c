/* Rejected: dereference of a scalar ("R1 invalid mem access 'scalar'"). */
#include "common.h"

SEC("xdp")
__naked int mem_access_scalar(void)
{
	asm volatile(
		"r1 = *(u32 *)(r1 + 16);"	/* rx_queue_index: a number, not a pointer */
		"r0 = *(u32 *)(r1 + 0);"
		"exit;"
	::: "memory");
}
