// SPDX-License-Identifier: GPL-2.0
/*
 * legacy_map_def.bpf.c - a map declared the pre-BTF way: a
 * `struct bpf_map_def` variable in the ELF section "maps" (as in the
 * Linux kernel's old samples/bpf and iproute2 programs).
 *
 * libbpf 1.0 removed both the struct from <bpf/bpf_helpers.h> and the
 * loading of "maps" sections, so the struct is declared here and
 * bpftool/libbpf 1.1 REFUSES to open the object ("legacy map definitions
 * in 'maps' section are not supported by libbpf v1.0+"). The program itself
 * is fine: it is test material for the project's own object reader and
 * loader, which must parse legacy map definitions (fixed 20-byte records,
 * one symbol per map).
 * Socket filter counting packets per IPv4 protocol (skb->data is the IPv4
 * header under BPF_PROG_TEST_RUN); returns skb->len.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct bpf_map_def SEC("maps") legacy_counts = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 256,
	.map_flags = 0,
};

struct bpf_map_def SEC("maps") legacy_last = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u32),
	.max_entries = 16,
	.map_flags = 0,
};

SEC("socket")
int legacy_map_def(struct __sk_buff *skb)
{
	__u8 proto = 0;
	__u32 key, zero = 0, len = skb->len;
	__u64 *cnt;

	bpf_skb_load_bytes(skb, 9, &proto, 1);
	key = proto;
	cnt = bpf_map_lookup_elem(&legacy_counts, &key);
	if (cnt)
		__sync_fetch_and_add(cnt, 1);
	bpf_map_update_elem(&legacy_last, &zero, &len, BPF_ANY);
	return skb->len;
}

char LICENSE[] SEC("license") = "GPL";
