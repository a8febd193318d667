/* Rejected without CAP_PERFMON: read of a slot inside the used stack that was
 * never written ("invalid read from stack off -8+0 size 8").
 * Loaded with CAP_BPF only (see regen.py). */
#include "common.h"

SEC("socket")
__naked int uninit_stack_slot(void)
{
	asm volatile(
		"r1 = 1;"
		"*(u64 *)(r10 - 16) = r1;"
		"r0 = *(u64 *)(r10 - 8);"
		"r0 = 0;"
		"exit;"
	::: "memory");
}
