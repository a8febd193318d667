/* len_div_histogram: histogram of IPv4 total lengths in 100-byte slots,
 * slot = min(tot_len, 1599) / 100.
 *
 * Pattern (masoncl/rsched PR 8: "the verifier ... cannot track value
 * ranges through division" -> "R0 unbounded memory access"): clang clamps
 * the length, then emits `w1 /= 100`.  The 6.18 verifier marks the result
 * of a BPF_DIV as unknown (range tracking for DIV/MOD came later), so the
 * clamp before the division is lost.
 *
 * Safe: tot_len is clamped to [0, 1599] before the division, so the slot
 * is in [0, 15], inside slot[16].
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define SLOT_WIDTH 100
#define NSLOTS 16

struct hist {
	__u64 slot[NSLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hist);
} len_hist SEC(".maps");

SEC("xdp")
int len_histogram(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u32 key = 0;

	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	struct hist *h = bpf_map_lookup_elem(&len_hist, &key);
	if (!h)
		return XDP_PASS;
	__u32 len = bpf_ntohs(ip->tot_len);
	if (len > NSLOTS * SLOT_WIDTH - 1)
		len = NSLOTS * SLOT_WIDTH - 1;
	h->slot[len / SLOT_WIDTH]++;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
