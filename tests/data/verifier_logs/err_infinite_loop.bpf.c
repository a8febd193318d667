/* Rejected: a loop that never changes state ("infinite loop detected at insn"). */
#include "common.h"

SEC("xdp")
__naked int infinite_loop(void)
{
	asm volatile(
		"r0 = 0;"
	"l_loop:"
		"if r0 == 0 goto l_loop;"
		"exit;"
	::: "memory");
}
