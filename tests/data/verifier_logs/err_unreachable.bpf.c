/* Rejected: an instruction no path reaches ("unreachable insn"). */
#include "common.h"

SEC("xdp")
__naked int unreachable(void)
{
	asm volatile(
		"r0 = 2;"
		"goto l_out;"
		"r0 = 1;"
	"l_out:"
		"exit;"
	::: "memory");
}
