/* ctx_cb_loop_counter: count the VLAN tags (at most 3) of a frame, keeping
 * the count in skb->cb[0] where the next program of a tc chain reads it.
 *
 * Pattern (variation of bpftrace/bpftrace issue 4767, "Infinite loop
 * (according to the verifier)": a loop whose counter lives in memory the
 * verifier does not track, there a map value, here the ctx scratch area
 * skb->cb[]).  skb is passed to bpf_skb_load_bytes(), so clang re-reads
 * cb[0] after every call; each read is an unknown scalar to the verifier,
 * the state at the loop head repeats exactly, and it reports "infinite
 * loop detected".  No asm.
 *
 * Safe: cb[0] is written only by this loop (the skb belongs to this program
 * while it runs), goes 0, 1, 2 and the loop stops at 3: at most 3
 * iterations; bpf_skb_load_bytes() checks the offset itself.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_VLAN 3

SEC("tc")
int vlan_depth(struct __sk_buff *skb)
{
	__be16 proto;

	/* cb[0] carries the VLAN depth to the next program in the chain */
	for (skb->cb[0] = 0; skb->cb[0] < MAX_VLAN; skb->cb[0]++) {
		if (bpf_skb_load_bytes(skb, 12 + skb->cb[0] * 4, &proto, sizeof(proto)))
			return TC_ACT_SHOT;
		if (proto != bpf_htons(0x8100) && proto != bpf_htons(0x88a8))
			break;
	}
	return skb->cb[0] < MAX_VLAN ? TC_ACT_OK : TC_ACT_SHOT;
}

char LICENSE[] SEC("license") = "GPL";
