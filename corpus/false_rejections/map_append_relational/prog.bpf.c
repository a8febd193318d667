/* map_append_relational (tc): append the IPv4 header (ihl * 4 bytes) to a
 * 256-byte log in a map value, wrapping to the start when it would not
 * fit: if (pos + n > 256) pos = 0.
 *
 * Pattern (Stack Overflow 77762365, "value is outside of the allowed
 * memory range when reading data into array": "I did a bounds check on
 * both the read length and the offset, but verifier still complain"): the
 * verifier checks the helper's destination with the largest pos (256) and
 * the largest n (60) independently, 256 + 60 > 256, and drops the relation
 * pos + n <= 256 that the program established.
 *
 * Safe: on the path that keeps pos, pos + n <= 256; on the other pos = 0
 * and n <= 60; either way the helper writes inside data[256].
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

struct hdr_log {
	__u32 pos;
	__u8 data[256];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hdr_log);
} hdr_log SEC(".maps");

SEC("tc")
int log_ip_header(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u32 key = 0;

	if ((void *)(ip + 1) > data_end)
		return TC_ACT_OK;
	__u32 n = ip->ihl * 4;
	if (n < sizeof(*ip))
		return TC_ACT_SHOT;
	struct hdr_log *l = bpf_map_lookup_elem(&hdr_log, &key);
	if (!l)
		return TC_ACT_OK;
	__u32 pos = l->pos;
	if (pos > sizeof(l->data))
		return TC_ACT_OK;
	if (pos + n > sizeof(l->data))
		pos = 0;
	if (bpf_skb_load_bytes(skb, sizeof(*eth), l->data + pos, n) < 0)
		return TC_ACT_OK;
	l->pos = pos + n;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
