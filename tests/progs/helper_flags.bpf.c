// SPDX-License-Identifier: GPL-2.0
/*
 * helper_flags.bpf.c - bpf_map_update_elem with its flags taken from the
 * packet: helper_validation's target.
 *
 * Byte 0 of the frame picks one of eight array slots, byte 1 is the update's
 * flags, and the slot gets the frame's length. Flags 0 (BPF_ANY) and 2
 * (BPF_EXIST) store it, 1 (BPF_NOEXIST) fails with -EEXIST (array slots
 * always exist), and anything else is outside the helper's contract: -EINVAL
 * (BPF_F_LOCK, 4, as well: the value has no spin lock). The verifier accepts
 * any flags value, so the program sees the error only at run time and goes
 * on: XDP_PASS when the update worked, XDP_DROP on -EINVAL, XDP_TX on other
 * errors. Runnable with BPF_PROG_TEST_RUN.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define EINVAL 22

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} last_len SEC(".maps");

SEC("xdp")
int helper_flags(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *p = data;
	__u32 key;
	__u64 len;
	long err;

	if ((void *)(p + 2) > data_end)
		return XDP_ABORTED;
	key = p[0] & 7;
	len = data_end - data;
	err = bpf_map_update_elem(&last_len, &key, &len, p[1]);
	if (err == -EINVAL)
		return XDP_DROP;
	return err ? XDP_TX : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
