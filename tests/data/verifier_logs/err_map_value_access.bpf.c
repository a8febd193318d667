/* Rejected: constant offset past the map value ("invalid access to map value"). */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} values SEC(".maps");

SEC("xdp")
__naked int map_value_access(void)
{
	asm volatile(
		"r1 = 0;"
		"*(u32 *)(r10 - 4) = r1;"
		"r2 = r10;"
		"r2 += -4;"
		"r1 = %[values] ll;"
		"call %[bpf_map_lookup_elem];"
		"if r0 == 0 goto l_out;"
		"r0 = *(u32 *)(r0 + 8);"	/* value_size is 8 */
	"l_out:"
		"r0 = 2;"
		"exit;"
	:: __imm_addr(values), __imm(bpf_map_lookup_elem)
	: "memory");
}
