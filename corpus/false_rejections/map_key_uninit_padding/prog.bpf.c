/* map_key_uninit_padding: look a flow up by a {saddr, daddr, proto} key
 * whose 3 trailing padding bytes are never written.
 *
 * Pattern (iovisor/bcc issue 919, "invalid indirect read from stack with
 * uninitialized struct"): older verifiers refused to pass partly
 * uninitialized stack memory to a helper.  Linux 6.18 accepts it for a
 * privileged loader (uninitialized stack reads are allowed with
 * CAP_PERFMON), so this case is kept as verdict = "accept".  No asm.
 *
 * Safe: the helper reads 12 bytes of the 12-byte key on the stack; the
 * packet reads are inside the checked 34 bytes.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

struct flow_key {
	__be32 saddr;
	__be32 daddr;
	__u8 proto;          /* followed by 3 bytes of padding, never written */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct flow_key);
	__type(value, __u64);
} flows SEC(".maps");

SEC("xdp")
int flow_lookup(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	struct flow_key key;

	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	key.saddr = ip->saddr;
	key.daddr = ip->daddr;
	key.proto = ip->protocol;
	return bpf_map_lookup_elem(&flows, &key) ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
