// SPDX-License-Identifier: GPL-2.0
/*
 * oob_index.bpf.c - XDP: indices from the packet, masked so the verifier
 * accepts them (& 7), that can still run past the array they index into the
 * variable next to it: asan's target.
 *
 * Exercises three variable-offset accesses the verifier accepts because
 * they stay inside their region:
 *   table[i]  .data (head, table[4], tail[4]): i = data[0] & 7; i >= 4
 *             reads tail, still inside the .data map value;
 *   buf[j]    stack: j = data[1] & 7, stored then loaded; j >= 4 overwrites
 *             canary, which sits right above buf in the frame;
 *   data[k]   packet: k = data[3] & 15, under the program's own data_end
 *             check (the verifier proves it; asan's check never fires).
 *
 * Verdict: (table[i] + buf[j] + canary[0] + canary[3] + data[k]) & 0xff,
 * XDP_DROP for frames shorter than 4 bytes. Every byte it reads is written
 * first, so the kernel and the interpreter agree on every frame, out of
 * range or not. Runnable with BPF_PROG_TEST_RUN (XDP).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__u32 head = 5;
__u32 table[4] = { 10, 20, 30, 40 };
__u32 tail[4] = { 100, 120, 140, 160 };

SEC("xdp")
int oob_index(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *p = data;
	volatile __u32 canary[4];
	volatile __u32 buf[4];
	__u32 i, j, k, sum;

	canary[0] = 1;
	canary[1] = 2;
	canary[2] = 3;
	canary[3] = 4;
	if ((void *)(p + 4) > data_end)
		return XDP_DROP;
	i = p[0] & 7;
	j = p[1] & 7;
	k = p[3] & 15;
	buf[j] = p[2];
	sum = table[i] + buf[j] + canary[0] + canary[3];
	if ((void *)(p + k + 1) <= data_end)
		sum += p[k];
	return sum & 0xff;
}

char LICENSE[] SEC("license") = "GPL";
