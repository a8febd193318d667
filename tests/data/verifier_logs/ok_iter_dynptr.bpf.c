/* Accepted: an open-coded numeric iterator and a local dynptr, so iter_ and
 * dynptr_ stack slots appear in the state. */
#include "common.h"

struct bpf_iter_num {
	__u64 __opaque[1];
} __attribute__((aligned(8)));

extern int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end) __ksym;
extern int *bpf_iter_num_next(struct bpf_iter_num *it) __ksym;
extern void bpf_iter_num_destroy(struct bpf_iter_num *it) __ksym;

__u64 buf[2]; /* global: dynptrs from memory need a map value, not the stack */

SEC("xdp")
int iter_dynptr(struct xdp_md *ctx)
{
	struct bpf_iter_num it;
	struct bpf_dynptr dp;
	int *v, sum = 0;

	bpf_dynptr_from_mem(buf, sizeof(buf), 0, &dp);
	bpf_iter_num_new(&it, 0, 4);
	while ((v = bpf_iter_num_next(&it)))
		sum += *v;
	bpf_iter_num_destroy(&it);
	return sum > 3 ? XDP_PASS : XDP_DROP;
}
