/* tcp_syn_options_parse: record MSS, window scale, SACK-permitted and
 * timestamp presence of TCP SYNs (a p0f-style fingerprint), walking the
 * option list with a bounded loop.
 *
 * Pattern (foniod/redbpf PR 264, "add p0f as example": it "can only
 * support 5 TCP options and more options would lead to BPF app too complex
 * that failed the Linux BPF verifier"; tempesta-tech/xFW PR 31: the kernel
 * selftest's SYN-proxy option parser "can pass the verifier only with
 * reduced number of batches").  The verifier follows every combination of
 * option kinds: each yields a different exact offset and set of recorded
 * fields, so states are not pruned, and it stops with "BPF program is too
 * large. Processed 1000001 insn".  No asm.
 *
 * Safe: the loop runs at most 40 times, off < 40 at each start, and every
 * read of opt[off + k] is preceded by a check of opt + off + k + 1 against
 * data_end; unknown kinds end the walk.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>

struct syn_opts { __u16 mss; __u8 wscale; __u8 sack_ok; __u8 ts; };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct syn_opts);
} last_syn SEC(".maps");

SEC("xdp")
int syn_opts_parse(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	struct tcphdr *tcp = (void *)(ip + 1);
	struct syn_opts o = {};
	__u32 zero = 0;

	if ((void *)(tcp + 1) > data_end || ip->protocol != IPPROTO_TCP || !tcp->syn)
		return XDP_PASS;
	__u8 *opt = (void *)(tcp + 1);
	__u32 off = 0;
	for (int i = 0; i < 40; i++) {
		if (off >= 40 || (void *)(opt + off + 1) > data_end)
			break;
		__u8 kind = opt[off];
		if (kind == 0)
			break;
		if (kind == 1) { off += 1; continue; }
		if ((void *)(opt + off + 2) > data_end)
			break;
		switch (kind) {
		case 2:
			if ((void *)(opt + off + 4) > data_end) goto done;
			o.mss = (opt[off + 2] << 8) | opt[off + 3];
			off += 4; break;
		case 3:
			if ((void *)(opt + off + 3) > data_end) goto done;
			o.wscale = opt[off + 2];
			off += 3; break;
		case 4:
			o.sack_ok = 1; off += 2; break;
		case 8:
			o.ts = 1; off += 10; break;
		default:
			goto done;
		}
	}
done:
	bpf_map_update_elem(&last_syn, &zero, &o, BPF_ANY);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
