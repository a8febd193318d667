/* pkt_end_minus_one_check: fill the UDP payload of a reply with bytes from
 * a map, one byte per iteration, each guarded by "payload + 1 > data_end".
 *
 * Pattern (parttimenerd/ebpf-verifier-errors issue 11, "Verifier
 * complaining about pointer arithmetic on pkt_end": "the compiler generated
 * a code that performed arithmetic on pkt_end"): the check is emitted as
 * `r4 = data_end; r4 += -1; if payload > r4 goto out`.  The verifier only
 * learns packet ranges from comparisons against pkt_end itself and forbids
 * any arithmetic on pkt_end.  clang-19 keeps the constant on the payload
 * side for this C, so the PAST_END() asm emits the comparison in the form
 * of the report; everything else is plain C.
 *
 * Safe: payload > data_end - 1 is the same test as payload + 1 > data_end
 * (data_end >= data + 1 > 0, no wrap), so every store is inside the packet;
 * i < 32 bounds the map value index (32-byte value).
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
	__type(value, __u8[32]);
} reply SEC(".maps");

/* goto label if ptr + 1 > end, written as ptr > end - 1 */
#define PAST_END(ptr, end, label)                                       \
	do {                                                            \
		void *__lim = (end);                                    \
		asm goto("%[lim] += -1\n\t"                            \
			 "if %[p] > %[lim] goto %l[" #label "]"          \
			 : [lim] "+r"(__lim) : [p] "r"(ptr) : : label);  \
	} while (0)

SEC("xdp")
int udp_reply_fill(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	__u8 *payload = data + sizeof(struct ethhdr) + sizeof(struct iphdr) +
			sizeof(struct udphdr);
	__u32 zero = 0;
	__u8 *vals = bpf_map_lookup_elem(&reply, &zero);

	if (!vals)
		return XDP_PASS;
	for (int i = 0; i < 32; i++) {
		PAST_END(payload, data_end, out);
		*payload = vals[i];
		payload++;
	}
out:
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
