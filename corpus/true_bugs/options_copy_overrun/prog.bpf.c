/* options_copy_overrun (TRUE BUG): copy the IPv4 options, one byte at a
 * time (each read checked against data_end), into a 32-byte per-CPU
 * scratch buffer kept in a map value; the length bound was written for the
 * wrong buffer size (48, not 32).
 *
 * Unsafe: with ihl = 15 the options are 40 bytes long; the loop writes
 * buf[32..39], past the end of the 32-byte map value.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

#define OPT_BUF 32

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u8[OPT_BUF]);
} opt_scratch SEC(".maps");

SEC("xdp")
int copy_options(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u32 key = 0;
	__u8 x = 0;

	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	__u32 n = ip->ihl * 4;
	if (n < sizeof(*ip))
		return XDP_DROP;
	n -= sizeof(*ip);
	if (n > 48)		/* BUG: the buffer holds OPT_BUF = 32 bytes */
		return XDP_DROP;
	__u8 *buf = bpf_map_lookup_elem(&opt_scratch, &key);
	if (!buf)
		return XDP_PASS;
	__u8 *src = (void *)(ip + 1);
	for (__u32 i = 0; i < n && i < 48; i++) {
		if ((void *)(src + i + 1) > data_end)
			break;
		buf[i] = src[i];
		x ^= src[i];
	}
	return x == 0x44 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
