// SPDX-License-Identifier: GPL-2.0
/*
 * atomics.bpf.c - every BPF_ATOMIC operation, 32- and 64-bit, on a map
 * value and on .bss globals.  Needs -mcpu=v3 or later: clang-19 refuses
 * fetching atomics and 32-bit atomics for v2 ("Invalid usage of the XADD
 * return value", "unsupported atomic operation, please use 64 bit version").
 *
 * Instructions produced (imm field of BPF_STX|BPF_ATOMIC|BPF_W/BPF_DW):
 *   BPF_ADD            __sync_fetch_and_add, result unused (old XADD)
 *   BPF_ADD|BPF_FETCH  __sync_fetch_and_add, result used
 *   BPF_OR / BPF_AND / BPF_XOR, with and without BPF_FETCH
 *   BPF_XCHG           __sync_lock_test_and_set
 *   BPF_CMPXCHG        __sync_val_compare_and_swap (R0 is the implicit
 *                      comparand and receives the old value)
 * Runnable with BPF_PROG_TEST_RUN (XDP): every run applies the same updates;
 * the returned values are stored in .bss `res_*`; returns XDP_PASS.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct counters {
	__u64 c64;
	__u32 c32;
	__u32 flags32;
	__u64 flags64;
	__u64 owner64;
	__u32 owner32;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct counters);
} atom_map SEC(".maps");

/* .bss */
__u64 g64;
__u32 g32;
__u64 res_add64, res_add32, res_or64, res_and32, res_xor64;
__u64 res_xchg64, res_xchg32, res_cmpxchg64, res_cmpxchg32;

SEC("xdp")
int atomics(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 len = ctx->data_end - ctx->data;
	struct counters *c = bpf_map_lookup_elem(&atom_map, &key);

	if (!c)
		return XDP_PASS;

	/* no fetch (result unused) */
	__sync_fetch_and_add(&c->c64, len);
	__sync_fetch_and_add(&c->c32, 1);
	__sync_fetch_and_or(&c->flags64, 0x10);
	__sync_fetch_and_and(&c->flags32, ~0x1u);
	__sync_fetch_and_xor(&c->flags64, 0x3);

	/* fetch (result used) */
	res_add64 = __sync_fetch_and_add(&g64, 2);
	res_add32 = __sync_fetch_and_add(&g32, 3);
	res_or64 = __sync_fetch_and_or(&c->flags64, 0x100);
	res_and32 = __sync_fetch_and_and(&c->flags32, 0xff);
	res_xor64 = __sync_fetch_and_xor(&g64, 0x5a5a);

	/* exchange and compare-and-exchange */
	res_xchg64 = __sync_lock_test_and_set(&c->owner64, len);
	res_xchg32 = __sync_lock_test_and_set(&g32, 7);
	res_cmpxchg64 = __sync_val_compare_and_swap(&c->owner64, len, len + 1);
	res_cmpxchg32 = __sync_val_compare_and_swap(&c->owner32, 0, 42);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
