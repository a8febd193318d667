/* bounded_loop_backedge: verify the IPv4 header checksum with a loop over
 * its ten 16-bit words that the compiler keeps as a loop.
 *
 * Pattern (cilium/cilium issue 1376, "bpf: allow for bounded loops"):
 * before Linux 5.3 the verifier refused any backward jump ("back-edge from
 * insn .. to .."), so such loops had to be unrolled.  Linux 6.18 walks the
 * bounded loop and accepts (a privileged loader may use loops), so this
 * case is kept as verdict = "accept".  The pragma keeps the loop a loop.
 *
 * Safe: the 20-byte header is checked against data_end first; i < 10
 * 16-bit words.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int ip_csum_check(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	__u16 *w = data + sizeof(struct ethhdr);
	__u32 sum = 0;

	if ((void *)(w + 10) > data_end)
		return XDP_PASS;
#pragma clang loop unroll(disable)
	for (int i = 0; i < 10; i++)
		sum += w[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum == 0 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
