/* Rejected without CAP_PERFMON: read of a stack slot never written
 * ("invalid read from stack"). Loaded with CAP_BPF only (see regen.py). */
#include "common.h"

SEC("socket")
__naked int uninit_stack(void)
{
	asm volatile(
		"r0 = *(u64 *)(r10 - 8);"
		"r0 = 0;"
		"exit;"
	::: "memory");
}
