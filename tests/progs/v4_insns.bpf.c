// SPDX-License-Identifier: GPL-2.0
/*
 * v4_insns.bpf.c - instructions added by cpu v4 (Linux 6.6): built only
 * with -mcpu=v4 (clang-19 refuses signed division below v4: "unsupported
 * signed division, please convert to unsigned div/mod").
 *
 * Exercises:
 *   BPF_LDX|BPF_MEMSX  sign-extending loads (s8, s16, s32) from the packet
 *   BPF_ALU64|BPF_MOV with off=8/16/32 (movsx: casts of registers)
 *   BPF_ALU(64)|BPF_DIV / BPF_MOD with off=1 (sdiv / smod), 64 and 32 bit
 *   BPF_ALU64|BPF_END (unconditional bswap16/32/64)
 * gotol (BPF_JMP32|BPF_JA with a 32-bit imm offset) is not provoked: it needs
 * a branch over more than 32767 instructions.
 * Results go to .bss. Runnable with BPF_PROG_TEST_RUN (XDP): drops frames
 * shorter than 40 bytes, passes the others.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__s64 r_ldsx8, r_ldsx16, r_ldsx32;
__s64 r_movsx8, r_movsx16, r_movsx32;
__s64 r_sdiv64, r_smod64;
__s32 r_sdiv32, r_smod32;
__u64 r_bswap16, r_bswap32, r_bswap64;

SEC("xdp")
int v4_insns(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	volatile __s64 wide;
	__s64 a, b, c;
	__s32 a32, b32, c32;
	__u64 raw;

	if (data + 40 > data_end)
		return XDP_DROP;

	/* sign-extending loads (each value only used sign-extended) */
	r_ldsx8 = *(__s8 *)(data + 14);
	r_ldsx16 = *(__s16 *)(data + 16);
	r_ldsx32 = *(__s32 *)(data + 20);

	/* sign-extending register moves: truncate a 64-bit value, then widen
	 * (the volatile spill keeps clang from folding them into loads) */
	raw = *(__u64 *)(data + 24);
	wide = raw;
	r_movsx8 = (__s8)wide;
	r_movsx16 = (__s16)wide;
	r_movsx32 = (__s32)wide;

	/* signed division and modulo; divisors are odd, hence never zero.
	 * Dividends differ between / and % so that clang cannot compute
	 * a % b as a - (a / b) * b. */
	a = *(__s32 *)(data + 32);
	b = *(__s8 *)(data + 36) | 1;
	c = *(__s16 *)(data + 38);
	r_sdiv64 = a / b;
	r_smod64 = (__s64)raw % b;
	a32 = (__s32)a;
	b32 = (__s32)c | 1;
	c32 = (__s32)(raw >> 32);
	r_sdiv32 = a32 / b32;
	r_smod32 = c32 % b32;

	/* byte swaps */
	r_bswap16 = __builtin_bswap16((__u16)raw);
	r_bswap32 = __builtin_bswap32((__u32)raw);
	r_bswap64 = __builtin_bswap64(raw);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
