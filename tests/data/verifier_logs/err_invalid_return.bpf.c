/* Rejected: a cgroup/skb program returning 3 ("At program exit the register R0 has ..."). */
#include "common.h"

SEC("cgroup_skb/ingress")
int invalid_return(struct __sk_buff *skb)
{
	return skb->len > 100 ? 3 : 1;
}
