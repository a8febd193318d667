/* Rejected without CAP_PERFMON: helper reads a key never written
 * ("invalid indirect read from stack"). Loaded with CAP_BPF only (see regen.py). */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} values SEC(".maps");

SEC("socket")
__naked int uninit_stack_indirect(void)
{
	asm volatile(
		"r2 = r10;"
		"r2 += -8;"
		"r1 = %[values] ll;"
		"call %[bpf_map_lookup_elem];"
		"r0 = 0;"
		"exit;"
	:: __imm_addr(values), __imm(bpf_map_lookup_elem)
	: "memory");
}
