/* rematerialized_pkt_ptr: drop UDP packets to port 53, with the UDP header
 * located after a variable-length IPv4 header (options included).
 *
 * Pattern (iovisor/bcc issue 5062, "invalid access to packet offset is
 * outside - clang optimizer bug?"): clang 14 checked `ip + ihl + 8` in one
 * register and, for the load, recomputed the header pointer from base and
 * offset (`r0 = r1; r0 += r7; r9 = *(u16 *)(r0 + 24)`).  Adding a variable
 * to a packet pointer gives it a fresh id with range 0, so the range learnt
 * on the checked register does not cover the recomputed one.  The reporter
 * fixed it by hand-editing one register in the assembly.  clang-19 happens
 * to reuse the register for this C, so the small asm block below emits the
 * load exactly as clang 14 did in the report; the rest is plain C.
 *
 * Safe: ihl is 20..60, udp = ip + ihl and udp + 8 <= data_end is checked;
 * the asm reads the 2 bytes at udp + 2, inside that checked range.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

SEC("xdp")
int udp_dport_ihl(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	__u64 ihl;
	__u16 dport;

	if ((void *)(ip + 1) > data_end || ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	ihl = ip->ihl * 4;                      /* 20..60 with options */
	if (ihl < sizeof(*ip))
		return XDP_DROP;
	struct udphdr *udp = (void *)ip + ihl;
	if ((void *)(udp + 1) > data_end)
		return XDP_PASS;
	/* udp->dest, loaded as clang 14 emitted it in the report: the header
	 * pointer is rematerialised from ip + ihl (same address) instead of
	 * reusing the register that was just bounds-checked. */
	asm volatile("%[t] = %[ip]\n\t"
		     "%[t] += %[ihl]\n\t"
		     "%[d] = *(u16 *)(%[t] + 2)"
		     : [t] "=&r"(udp), [d] "=r"(dport)
		     : [ip] "r"(ip), [ihl] "r"(ihl));
	return dport == bpf_htons(53) ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
