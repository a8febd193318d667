/* Rejected: a helper id no kernel has ("invalid func unknown#"). */
#include "common.h"

SEC("xdp")
__naked int helper_unknown(void)
{
	asm volatile(
		"call 12345;"
		"r0 = 2;"
		"exit;"
	::: "memory");
}
