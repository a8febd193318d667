// SPDX-License-Identifier: GPL-2.0
/*
 * socket_ld_abs.bpf.c - socket filter written with the legacy packet-access
 * instructions BPF_LD|BPF_ABS and BPF_LD|BPF_IND (classic-BPF heritage):
 * accept IPv4 UDP packets to port 53 that are not sent to 255.255.255.255.
 *
 * clang-19 has no __builtin_bpf_load_byte; the LLVM intrinsics
 * llvm.bpf.load.{byte,half,word} are reached through asm labels, as in the
 * Linux kernel's samples/bpf/bpf_legacy.h. A constant offset gives LD_ABS,
 * a computed one (the UDP port behind a variable-length IPv4 header) gives
 * LD_IND. Loaded values are converted to host byte order by the kernel.
 * These instructions implicitly use R6 as the context and clobber R0-R5;
 * they exit the program with 0 if the access is out of bounds.
 *
 * Offsets are relative to skb->data (the IPv4 header under
 * BPF_PROG_TEST_RUN). Returns 0xffffffff (keep all) or 0 (drop).
 * Runnable with BPF_PROG_TEST_RUN.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");
unsigned long long load_word(void *skb, unsigned long long off) asm("llvm.bpf.load.word");

SEC("socket")
int socket_ld_abs(struct __sk_buff *skb)
{
	unsigned long long vihl, hlen;

	vihl = load_byte(skb, 0);                 /* LD_ABS B */
	if ((vihl >> 4) != 4)
		return 0;
	if (load_byte(skb, 9) != IPPROTO_UDP)     /* LD_ABS B: protocol */
		return 0;
	if (load_word(skb, 16) == 0xffffffffULL)  /* LD_ABS W: daddr */
		return 0;
	hlen = (vihl & 0xf) << 2;
	if (load_half(skb, hlen + 2) != 53)       /* LD_IND H: UDP dest port */
		return 0;
	return -1;
}

char LICENSE[] SEC("license") = "GPL";
