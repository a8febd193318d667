/* u32_wrap_offset_check (TRUE BUG): store an 8-byte cookie from the packet
 * at a record offset also taken from the packet, with the bound computed
 * in 32 bits: `if (off + 8 > 256) drop`.
 *
 * Unsafe: off = 0xfffffffc makes off + 8 wrap to 4, the check passes and
 * the store goes ~4 GiB past the map value (off is zero-extended).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct rec_hdr {
	__be32 off;
	__u64 cookie;
} __attribute__((packed));

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u8[256]);
} records SEC(".maps");

SEC("xdp")
int store_cookie(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct rec_hdr *h = data + sizeof(struct ethhdr);
	__u32 key = 0;

	if ((void *)(h + 1) > data_end)
		return XDP_PASS;
	__u32 off = bpf_ntohl(h->off);
	if (off + 8 > 256)	/* BUG: wraps for off > 0xfffffff7 */
		return XDP_DROP;
	__u8 *r = bpf_map_lookup_elem(&records, &key);
	if (!r)
		return XDP_PASS;
	__builtin_memcpy(r + off, &h->cookie, 8);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
