/* pkt_len_u32_truncation (tc): append the first n = min(linear length, 64)
 * bytes of each packet to a 256-byte capture buffer kept in a map value.
 *
 * Pattern (iovisor/bcc issue 3269: `__u32 data_length = (__u32)(data_end -
 * (data + ...))` then bpf_skb_load_bytes(..., data_length) rejected in
 * spite of "make verifier happy" checks): clang computes the u32 length
 * as a 32-bit subtraction of the data_end/data pointer registers.  The 6.18 verifier
 * turns the 32-bit subregister of a pointer into an unknown scalar whose
 * upper half it does not zero, so the later 32-bit checks (n < 64, n != 0)
 * bound only the low half and the helper's size is "min value is
 * negative".
 *
 * Safe: n is the 32-bit frame length, clamped to [1, 64]; pos <= 256 and
 * pos + n <= 256 (no wrap: both are small), so the helper writes inside
 * data[256]; bpf_skb_load_bytes itself checks the packet side.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct capture {
	__u32 len;
	__u8 data[256];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct capture);
} cap SEC(".maps");

SEC("tc")
int capture_head(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 key = 0;

	struct capture *c = bpf_map_lookup_elem(&cap, &key);
	if (!c)
		return TC_ACT_OK;
	__u32 pos = c->len;
	if (pos > sizeof(c->data))
		return TC_ACT_OK;
	__u32 n = data_end - data;
	if (n > 64)
		n = 64;
	if (n == 0)
		return TC_ACT_OK;
	if (pos + n > sizeof(c->data))
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, 0, c->data + pos, n) < 0)
		return TC_ACT_OK;
	c->len = pos + n;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
