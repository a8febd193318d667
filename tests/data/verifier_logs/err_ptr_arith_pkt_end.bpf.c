/* Rejected: arithmetic on the packet-end pointer ("pointer arithmetic on pkt_end prohibited"). */
#include "common.h"

SEC("xdp")
__naked int ptr_arith_pkt_end(void)
{
	asm volatile(
		"r2 = *(u32 *)(r1 + 4);"
		"r2 += -14;"
		"r0 = 2;"
		"exit;"
	::: "memory");
}
