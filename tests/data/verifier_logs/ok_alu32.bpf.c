/* Accepted: 32-bit ALU ops and the 32-bit bounds they give (compiled -mcpu=v3). */
#include "common.h"

SEC("xdp")
__naked int alu32(void)
{
	asm volatile(
		"w2 = *(u32 *)(r1 + 0);"	/* data, as a u32 */
		"w3 = *(u32 *)(r1 + 16);"	/* rx_queue_index */
		"w3 &= 15;"
		"w4 = w3;"
		"w4 += -8;"			/* may be negative in 32-bit */
		"w5 = w3;"
		"w5 <<= 4;"
		"w5 |= 1;"
		"w6 = -1;"
		"w6 >>= 24;"
		"if w4 s> 3 goto l_big;"
		"w0 = 2;"
		"exit;"
	"l_big:"
		"w0 = w4;"
		"w0 &= 1;"
		"w0 += 1;"
		"exit;"
	::: "memory");
}
