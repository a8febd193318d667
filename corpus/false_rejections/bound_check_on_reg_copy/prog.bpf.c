/* bound_check_on_reg_copy: per-TOS byte counters for TOS values below 64,
 * indexed by a byte of the packet that is bounds-checked on a register
 * copy.
 *
 * Pattern (cilium/cilium issue 5130, "LLVM generates r1 = r2 ; <check r1>
 * ; <use r2> and the verifier doesn't track/understand it"): the verifier
 * of the time learnt the bound only on the checked copy.  Linux 6.18 links
 * scalar copies (same id) and propagates the bound to the original, so
 * this case is kept as verdict = "accept".  The asm goto only pins the
 * copy-then-check shape of the report; the rest is plain C.
 *
 * Safe: idx = ip->tos is used only when the copy, equal to it, is <= 63,
 * and the table has 64 entries.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64[64]);       /* bytes per TOS value 0..63 */
} tos_bytes SEC(".maps");

SEC("xdp")
int tos_account(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	__u32 zero = 0;
	__u64 idx, copy;

	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	__u64 *tbl = bpf_map_lookup_elem(&tos_bytes, &zero);
	if (!tbl)
		return XDP_PASS;
	idx = ip->tos;
	/* r1 = r2; if r1 > 63 goto out; ... use r2 */
	asm goto("%[c] = %[i]\n\t"
		 "if %[c] > 63 goto %l[out]"
		 : [c] "=&r"(copy) : [i] "r"(idx) : : out);
	tbl[idx] += data_end - data;
out:
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
