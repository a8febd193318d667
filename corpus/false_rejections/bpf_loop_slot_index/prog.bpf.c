/* bpf_loop_slot_index: sum NSLOTS per-slot byte counters with bpf_loop and
 * drop the packet if the total exceeds a budget; the callback indexes the
 * slot array with its loop index.
 *
 * Pattern (variation; the callback's index is the u64 first argument
 * described with bpf_loop's introduction, torvalds/linux commit
 * e6f2dd0f8067): the 6.18 verifier checks the callback once with an
 * unknown index, not with [0, nr_loops), so `v[i]` is "math between
 * map_value pointer and register with unbounded min value".
 *
 * Safe: bpf_loop(NSLOTS, ...) calls the callback with i = 0 .. NSLOTS-1
 * only, and v[] has NSLOTS entries.
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
	bpf_loop(NSLOTS, add_slot, &c, 0);
	return c.sum > (1 << 20) ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
