/* map_window_copy: copy a window [offset, offset + size) of a 1 KiB record
 * kept in an array map into a 64-byte stack buffer, byte by byte; offset
 * and size come from the packet.
 *
 * Pattern (Stack Overflow 74178703, "invalid access to map value even with
 * bounds check": `if (offset + size <= 1024) for (i = 0; i < size &&
 * i < 512; ++i) ... b + offset + i`): the verifier bounds offset (<= 1023)
 * and i (<= 63) separately and loses the relation offset + size <= 1024,
 * so b + offset + i may be 1086 > 1023: "invalid access to map value".
 *
 * Safe: offset + size <= 1024 and i < size, so offset + i <= 1023.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct record {
	__u8 b[1024];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct record);
} store SEC(".maps");

SEC("xdp")
int window_copy(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	volatile __u8 out[64];
	__u32 key = 0;

	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	__u32 offset = bpf_ntohs(ip->id), size = ip->ttl;
	if (size > 64 || offset >= 1024)
		return XDP_PASS;
	struct record *r = bpf_map_lookup_elem(&store, &key);
	if (!r)
		return XDP_PASS;
	if (offset + size > 1024)
		return XDP_PASS;
	for (int j = 0; j < 64; j++)
		out[j] = 0;
	for (__u32 i = 0; i < size && i < 64; i++)
		out[i] = r->b[offset + i];
	return out[0] == 0xff ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
