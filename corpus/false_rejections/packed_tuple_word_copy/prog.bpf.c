/* packed_tuple_word_copy: build a conntrack key {zone, 5-tuple} whose
 * packed tuple sits at offset 2, filling the tuple with a word-wise copy
 * in the style of cilium's __bpf_memcpy() (u64 + u32 + u16 accesses).
 *
 * Pattern (cilium/cilium PR 38315, "bpf/tests: Fix misaligned stack
 * access": "misaligned stack access off 0+0+-60 size 8"): the casts tell
 * clang the words are naturally aligned, so it emits 4- and 8-byte stack
 * stores at fp-6 and fp-14; the verifier requires aligned stack accesses
 * (its spill tracking works on 8-byte slots) and rejects.  No asm; clang
 * warns about taking the address of a packed member, as in the report.
 *
 * Safe: all stores land inside the 16-byte key on the stack; x86-64 and the
 * BPF JITs handle unaligned loads/stores, and the interpreter copies bytes.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>

struct ct_tuple {
	__be32 daddr;
	__be32 saddr;
	__be16 dport;
	__be16 sport;
	__u8 nexthdr;
	__u8 flags;
} __attribute__((packed));      /* 14 bytes, alignment 1 */

struct ct_key {
	__u16 zone;
	struct ct_tuple tuple;      /* at offset 2 */
} __attribute__((packed));

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct ct_key);
	__type(value, __u64);
} ct SEC(".maps");

/* word-wise copy in the style of cilium's __bpf_memcpy() */
static __always_inline void tuple_copy(void *d, const void *s)
{
	*(__u64 *)d = *(const __u64 *)s;
	*(__u32 *)(d + 8) = *(const __u32 *)(s + 8);
	*(__u16 *)(d + 12) = *(const __u16 *)(s + 12);
}

SEC("xdp")
int ct_lookup(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	struct udphdr *udp = (void *)(ip + 1);
	struct ct_key key;

	if ((void *)(udp + 1) > data_end)
		return XDP_PASS;
	key.zone = 0;
	struct ct_tuple t = {
		.daddr = ip->daddr, .saddr = ip->saddr,
		.dport = udp->dest, .sport = udp->source,
		.nexthdr = ip->protocol, .flags = 0,
	};
	tuple_copy(&key.tuple, &t);
	__u64 *hits = bpf_map_lookup_elem(&ct, &key);
	if (hits)
		__sync_fetch_and_add(hits, 1);
	return hits ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
