/* combined_stack_two_frames: hash a 256-byte header snapshot, then let a
 * non-inlined function sum the next 320 bytes (options area), each copied
 * to the stack with bpf_skb_load_bytes().
 *
 * Pattern (tempesta-tech/xFW issue 37, "combined stack size of 3 calls is
 * 544. Too large"): each frame is under the 512-byte limit (main 256,
 * opt_sum 320) but the verifier caps the sum over the call chain at 512 and
 * rejects with "combined stack size of 2 calls is 576. Too large".  No asm.
 *
 * Safe: every stack access is inside its own frame; bpf_skb_load_bytes()
 * fails cleanly on short packets; both loops index within their buffers
 * (i < 256 step 16, i < 320 step 32).
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#define HDR_SNAP 256
#define OPT_SNAP 320

/* sum of sampled option bytes that follow the header snapshot */
static __noinline __u32 opt_sum(struct __sk_buff *skb, __u32 off)
{
	__u8 opts[OPT_SNAP];
	__u32 sum = 0;

	if (bpf_skb_load_bytes(skb, off, opts, sizeof(opts)))
		return 0;
	for (int i = 0; i < OPT_SNAP; i += 32)
		sum += opts[i];
	return sum;
}

SEC("tc")
int snap_hash(struct __sk_buff *skb)
{
	__u8 hdr[HDR_SNAP];
	__u32 h = 0;

	if (bpf_skb_load_bytes(skb, 0, hdr, sizeof(hdr)))
		return TC_ACT_OK;
	for (int i = 0; i < HDR_SNAP; i += 16)
		h = h * 31 + hdr[i];
	h += opt_sum(skb, HDR_SNAP);
	skb->mark = h;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
