/* stack_key_field_spill: look a flow up by a small struct key built on the
 * stack; on a miss, count the packet in a per-class slot array, using the
 * class stored in the key (key.slot = DSCP, 0..63).
 *
 * Pattern (josefbacik/systing PR 220: an index range-checked early is
 * rebuilt from memory after helper calls and the 6.18 verifier reports
 * "R0 unbounded memory access"; the fix re-bounds it at the use): the
 * u32 `slot` lives at fp-4, in the upper half of an 8-byte stack slot;
 * clang reloads it after bpf_map_lookup_elem.  The 6.18 verifier keeps no
 * value for a 4-byte spill at a non 8-byte-aligned offset, so the reload
 * is an unknown u32.
 *
 * Safe: key.slot is written once with tos >> 2, which is in [0, 63];
 * slots[] has 64 entries.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>

struct flow_key {
	__be16 sport;
	__u8 proto;
	__u8 pad;
	__u32 slot;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct flow_key);
	__type(value, __u64);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64[64]);
} class_slots SEC(".maps");

SEC("xdp")
int class_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	struct flow_key key = {};
	__u32 zero = 0;

	if ((void *)(udp + 1) > data_end)
		return XDP_PASS;
	key.sport = udp->source;
	key.proto = ip->protocol;
	key.slot = ip->tos >> 2;
	__u64 *cnt = bpf_map_lookup_elem(&flows, &key);
	if (cnt) {
		__sync_fetch_and_add(cnt, 1);
		return XDP_PASS;
	}
	__u64 *slots = bpf_map_lookup_elem(&class_slots, &zero);
	if (!slots)
		return XDP_PASS;
	slots[key.slot]++;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
