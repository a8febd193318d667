/* Rejected for an unprivileged loader: any loop ("back-edge from insn").
 * Loaded with no capabilities at all (see regen.py --unpriv-sysctl). */
#include "common.h"

SEC("socket")
__naked int back_edge(void)
{
	asm volatile(
		"r0 = 0;"
	"l_loop:"
		"r0 += 1;"
		"if r0 < 4 goto l_loop;"
		"r0 = 0;"
		"exit;"
	::: "memory");
}
