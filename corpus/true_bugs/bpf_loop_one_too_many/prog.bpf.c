/* bpf_loop_one_too_many (TRUE BUG): sum the per-slot counters with
 * bpf_loop, passing NSLOTS + 1 as the iteration count ("<=" habit).
 *
 * Unsafe: on every run the last callback reads v[NSLOTS], 8 bytes past the
 * 128-byte map value.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define NSLOTS 16

struct slots {
	__u64 v[NSLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct slots);
} slot_bytes SEC(".maps");

struct sum_ctx {
	struct slots *s;
	__u64 sum;
};

static long add_slot(__u64 i, void *data)
{
	struct sum_ctx *c = data;

	c->sum += c->s->v[i];
	return 0;
}

SEC("xdp")
int budget_check(struct xdp_md *ctx)
{
	__u32 key = 0;
	struct slots *s = bpf_map_lookup_elem(&slot_bytes, &key);

	if (!s)
		return XDP_PASS;
	struct sum_ctx c = { .s = s, .sum = 0 };
	bpf_loop(NSLOTS + 1, add_slot, &c, 0);	/* BUG: NSLOTS */
	return c.sum > (1 << 20) ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
