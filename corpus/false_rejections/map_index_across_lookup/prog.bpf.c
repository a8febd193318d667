/* map_index_across_lookup: a per-source slot index is looked up in a hash
 * map, checked against MAX_SLOTS, and used after a second lookup (of the
 * slot array) to update that slot.
 *
 * Pattern (google/ghost-userspace issue 31, gtid_to_swd():
 * `idx = swi->index; if (idx >= BIFF_MAX_GTIDS) return NULL; __swa =
 * bpf_map_lookup_elem(...); return &__swa->e[idx];` -> "R0 unbounded
 * memory access" on its kernel): Linux 6.18 keeps the index, held in a
 * callee-saved register across the call, bounded and accepts.  Kept as
 * verdict = "accept".
 *
 * Safe: idx < MAX_SLOTS is checked before a[] is indexed.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

#define MAX_SLOTS 1024

struct slot_info {
	__u32 index;
	__u32 flags;
};

struct slot {
	__u64 pkts;
	__u64 bytes;
};

struct slot_arr {
	struct slot e[MAX_SLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct slot_info);
} slot_of SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct slot_arr);
} slots SEC(".maps");

SEC("xdp")
int slot_account(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u32 zero = 0;

	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	__u32 saddr = ip->saddr;
	struct slot_info *si = bpf_map_lookup_elem(&slot_of, &saddr);
	if (!si)
		return XDP_PASS;
	__u32 idx = si->index;
	if (idx >= MAX_SLOTS)
		return XDP_PASS;
	struct slot_arr *a = bpf_map_lookup_elem(&slots, &zero);
	if (!a)
		return XDP_PASS;
	a->e[idx].pkts++;
	a->e[idx].bytes += data_end - data;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
