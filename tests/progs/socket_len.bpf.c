// SPDX-License-Identifier: BSD-2-Clause
/*
 * socket_len.bpf.c - socket filter (SEC("socket")) that returns how many
 * bytes of the packet to keep, chosen from packet bytes: whole TCP packets,
 * UDP truncated to 64 bytes, everything else dropped (0).
 *
 * Exercises: BPF_PROG_TYPE_SOCKET_FILTER, bpf_skb_load_bytes at constant
 * offsets, skb->len, a return value that is a length rather than a verdict,
 * and a NON-GPL license ("BSD"): the program must use no gpl_only helper
 * (bpf_skb_load_bytes is not gpl_only), otherwise the kernel rejects it with
 * "cannot call GPL-restricted function from non-GPL compatible program".
 *
 * Offsets are relative to skb->data; for a socket filter under
 * BPF_PROG_TEST_RUN (and on an AF_PACKET SOCK_DGRAM socket) that is the IPv4
 * header, not the Ethernet header. Runnable with BPF_PROG_TEST_RUN.
 */
#include <stddef.h>
#include <linux/bpf.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

SEC("socket")
int socket_len(struct __sk_buff *skb)
{
	__u8 vihl, proto;

	if (bpf_skb_load_bytes(skb, 0, &vihl, 1) < 0)
		return 0;
	if ((vihl >> 4) != 4)
		return 0;
	if (bpf_skb_load_bytes(skb, offsetof(struct iphdr, protocol), &proto, 1) < 0)
		return 0;
	if (proto == IPPROTO_TCP)
		return skb->len;
	if (proto == IPPROTO_UDP)
		return skb->len < 64 ? skb->len : 64;
	return 0;
}

char LICENSE[] SEC("license") = "BSD";
