/* libFuzzer target for the etcd store's answer decoding: the input is the body of an
 * answer from a (hostile or broken) etcd member's JSON gateway, decoded as every step of
 * the store would read it (a shard's keys, a timetolive, a keep-alive, a transaction's
 * outcome, a grant, a state load and write, a member listing). A decoder must give
 * results in range, and never read or write past what it holds. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lease.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    axd_lease_etcd_decoded d;
    if (axd_lease_etcd_decode((const char *)data, size, &d) != 0)
        return 0;
    if (d.epoch > AXD_LEASE_EPOCH_MAX || d.last > AXD_LEASE_EPOCH_MAX || d.owner_len > AXD_LEASE_NODE_MAX ||
        strlen(d.owner) != d.owner_len || d.bad_member || d.state_len > AXD_STATE_VALUE_MAX || d.state_records < -1)
        __builtin_trap();
    for (int i = 0; i < 2; i++)
        if (d.state_status[i] != AX_OK && d.state_status[i] != AX_ESTALE && d.state_status[i] != AX_EPROTO &&
            d.state_status[i] != AX_ENOMEM)
            __builtin_trap();
    return 0;
}
