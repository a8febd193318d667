/* payload_signature_scan: drop frames that carry a 16-byte request
 * signature anywhere in their first 1500 bytes (naive scan: every start
 * offset, then a byte-by-byte compare).
 *
 * Pattern (parttimenerd/ebpf-verifier-errors issue 5, "Program to
 * complex": a payload scan for a "Host: " header rejected although the
 * program is small and bounded): the verifier walks the outer loop offset
 * by offset, and at each offset queues one pending branch per compared byte
 * (a mismatch exits to the next offset).  After ~546 offsets the queue of
 * pending branches passes its limit: "The sequence of 8193 jumps is too
 * complex.", with only ~28K instructions processed.  No asm.
 *
 * Safe: i < 1500, and each window is checked with p + i + 16 <= data_end
 * before bytes p[i..i+15] are read; sig has 16 bytes.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define SCAN 1500          /* Ethernet MTU */
#define SIG_LEN 16

static const char sig[SIG_LEN] = "GET /etc/passwd ";

SEC("xdp")
int sig_scan(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *p = (void *)(long)ctx->data;

	for (int i = 0; i < SCAN; i++) {
		if ((void *)(p + i + SIG_LEN) > data_end)
			break;
		int j;
		for (j = 0; j < SIG_LEN; j++)
			if (p[i + j] != sig[j])
				break;
		if (j == SIG_LEN)
			return XDP_DROP;
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
