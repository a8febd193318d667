/* Rejected: non-negative but huge variable offset ("R6 unbounded memory access"). */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} values SEC(".maps");

SEC("xdp")
__naked int unbounded_access(void)
{
	asm volatile(
		"r1 = 0;"
		"*(u32 *)(r10 - 4) = r1;"
		"r2 = r10;"
		"r2 += -4;"
		"r1 = %[values] ll;"
		"call %[bpf_map_lookup_elem];"
		"if r0 == 0 goto l_out;"
		"r6 = r0;"
		"call %[bpf_ktime_get_ns];"
		"r0 >>= 1;"			/* 0 .. 2^63-1 */
		"r6 += r0;"
		"r0 = *(u8 *)(r6 + 0);"
	"l_out:"
		"r0 = 2;"
		"exit;"
	:: __imm_addr(values), __imm(bpf_map_lookup_elem), __imm(bpf_ktime_get_ns)
	: "memory");
}
