/* backend_mod_select: pick a backend as flow_hash % n_backends, n_backends
 * being configured by user space (0 = default 7, capped at MAX_BACKENDS),
 * and count the packets sent to each backend.
 *
 * Pattern (variation of bcc issue 258 with a run-time modulus, as in a
 * load balancer's hash % ring size): clang emits `w1 %= w2`.  The 6.18
 * verifier drops all bounds after a BPF_MOD by a register, so the
 * `if (n > MAX_BACKENDS)` clamp does not carry over to the index.
 *
 * Safe: n is in [1, 64] when the modulo runs, so idx = hash % n is in
 * [0, 63], inside hits[64].
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

#define MAX_BACKENDS 64

struct lb_state {
	__u32 n_backends;
	__u32 pad;
	__u64 hits[MAX_BACKENDS];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_state);
} lb SEC(".maps");

SEC("xdp")
int backend_select(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u32 key = 0;

	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	struct lb_state *s = bpf_map_lookup_elem(&lb, &key);
	if (!s)
		return XDP_PASS;
	__u32 n = s->n_backends;
	if (n == 0)
		n = 7;
	if (n > MAX_BACKENDS)
		n = MAX_BACKENDS;
	__u32 hash = ip->saddr * 31 + ip->daddr;
	s->hits[hash % n]++;
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
