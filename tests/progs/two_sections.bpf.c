// SPDX-License-Identifier: GPL-2.0
/*
 * two_sections.bpf.c - one object, two programs in two different sections
 * (SEC("xdp") and SEC("tc")) sharing one BTF-defined map and one static
 * subprogram in .text.
 *
 * Exercises: an object with several program sections of different program
 * types; a map relocated in two sections; a .text subprogram appended to
 * both programs by the loader; "bpftool prog loadall" pins both
 * (xdp_count, tc_count).
 * Both runnable with BPF_PROG_TEST_RUN: xdp_count counts in slot 0 and
 * returns XDP_PASS, tc_count counts in slot 1 and returns TC_ACT_OK.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} hook_hits SEC(".maps");

static __noinline void bump(__u32 slot, __u64 amount)
{
	__u64 *v = bpf_map_lookup_elem(&hook_hits, &slot);

	if (v)
		__sync_fetch_and_add(v, amount);
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	bump(0, ctx->data_end - ctx->data);
	return XDP_PASS;
}

SEC("tc")
int tc_count(struct __sk_buff *skb)
{
	bump(1, skb->len);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
