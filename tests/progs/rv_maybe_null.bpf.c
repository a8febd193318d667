// SPDX-License-Identifier: GPL-2.0
/*
 * rv_maybe_null.bpf.c - a maybe-NULL map value pointer copied before its NULL
 * check (the shape of CVE-2022-23222), then a variable index into the value:
 * runtime_validation's target.
 *
 * The key is data[0]: the array has 4 slots, so keys 0-3 give a value and any
 * other key gives NULL. Before the NULL check the pointer is copied into r3 of
 * bpf_probe_read_kernel, which tolerates NULL (it fails with -EFAULT and zeroes
 * `peek`); after the check, slots[data[1] & 7] is read through the pointer plus
 * a variable offset (0-56). Returns XDP_DROP for a missing key, XDP_TX when
 * the slot equals the value's first 8 bytes, else XDP_PASS; XDP_PASS for a
 * frame shorter than 2 bytes.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct rec {
	__u64 head;
	__u64 slots[8];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct rec);
} rv_recs SEC(".maps");

SEC("xdp")
int rv_maybe_null(struct xdp_md *ctx)
{
	__u8 *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct rec *r;
	__u64 peek = 0;
	__u32 key;

	if ((void *)(data + 2) > data_end)
		return XDP_PASS;
	key = data[0];
	r = bpf_map_lookup_elem(&rv_recs, &key);
	bpf_probe_read_kernel(&peek, sizeof(peek), r); /* r may still be NULL here */
	if (!r)
		return XDP_DROP;
	return r->slots[data[1] & 7] == peek ? XDP_TX : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
