/* volatile_len_reread: skip a TLV extension that follows the UDP header and
 * look at the first byte after it.  The extension length is kept in a
 * `volatile int`, checked for `< 0`, then added to the packet cursor.
 *
 * Pattern (Stack Overflow 70750259, which declares
 * `volatile int ext_len = __bpf_htons(ext->len); if (ext_len < 0) ...;
 * data += ext_len;`): clang spills the int to a 4-byte slot at fp-4 and
 * reloads it for each use.  The 6.18 verifier does not track a 32-bit
 * spill at a slot that is not 8-byte aligned, so the reload after the
 * check is an arbitrary s32 ("value -2147483648 makes pkt pointer be out
 * of bounds"): the `< 0` check is lost through the stack.
 *
 * Safe: the slot is written once, with bpf_ntohs(...) in [0, 65535], so
 * both reloads read that value; the cursor is then compared with data_end
 * before the one-byte read.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct ext {
	__be16 type;
	__be16 len;
};

SEC("xdp")
int skip_extension(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	struct ext *e = (void *)(udp + 1);

	if ((void *)(e + 1) > data_end)
		return XDP_PASS;
	void *p = e + 1;
	volatile int ext_len = bpf_ntohs(e->len);
	if (ext_len < 0)
		return XDP_PASS;
	p += ext_len;
	if (p + 1 > data_end)
		return XDP_PASS;
	return *(__u8 *)p == 0xff ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
