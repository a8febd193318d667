/* stack_ptr_array_var_index: hash on the header of a configurable layer
 * (L2, L3 or L4); the header start of each layer is kept in a small array
 * of pointers on the stack and picked with the configured index.
 *
 * Pattern (variation of vbpf/prevail issue 201, "Interval access into stack
 * array", where the Linux verifier also fails a variable-index stack read):
 * the three packet pointers are spilled to fp-24..fp-8 with 8-byte stores
 * (types kept), but `layer[lvl]` is a variable-offset stack read, and the
 * verifier types the result as an unknown scalar, so the dereference fails
 * with "invalid mem access 'scalar'".  No asm.
 *
 * Safe: the packet is checked to hold Ethernet + IPv4 (20 bytes) + UDP
 * (8 bytes) before the lookup; lvl is clamped to 0..2 and each layer start
 * has at least 8 bytes after it (h[0] and h[1]).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);           /* 0: L2, 1: L3, 2: L4 */
} hash_layer SEC(".maps");

SEC("xdp")
int layer_hash(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	void *layer[3] = { eth, ip, udp };   /* header start per layer */
	__u32 zero = 0, *cfg, lvl;

	if ((void *)(udp + 1) > data_end)   /* all three headers present */
		return XDP_PASS;
	cfg = bpf_map_lookup_elem(&hash_layer, &zero);
	if (!cfg)
		return XDP_PASS;
	lvl = *cfg;
	if (lvl > 2)
		lvl = 2;
	__u32 *h = layer[lvl];               /* >= 8 bytes at each layer */
	return (h[0] ^ h[1]) & 1 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
