/* libFuzzer target for the Redis lease and state store's reply decoding: the input is a
 * byte stream from a (hostile or broken) Redis, parsed by hiredis's reader into replies
 * as a connection would, and every reply is decoded as each script's answer. A decoder
 * must either refuse it with a reason, or give a result whose fields are in range. */
#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lease.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    redisReader *rd = redisReaderCreate();
    if (!rd)
        return 0;
    axd_lease_redis_bound_reader(rd); /* as the store's connections are */
    if (redisReaderFeed(rd, (const char *)data, size) != REDIS_OK) {
        redisReaderFree(rd);
        return 0;
    }
    for (int n = 0; n < 64; n++) {
        void *reply = NULL;
        if (redisReaderGetReply(rd, &reply) != REDIS_OK || !reply)
            break;
        for (int op = 0; op < AXD_LEASE_REDIS_OPS; op++) {
            axd_lease_result res;
            axd_state_result sr;
            const char *why = NULL;
            int rc = axd_lease_redis_decode(op, reply, &res, &sr, &why);
            if (rc != 0) {
                if (!why || !*why)
                    __builtin_trap(); /* every refusal says why */
                continue;
            }
            if (op < 4) {
                if (res.epoch > AXD_LEASE_EPOCH_MAX || res.owner_len > AXD_LEASE_NODE_MAX ||
                    (res.owner_len && (!res.owner || memchr(res.owner, 0, res.owner_len))) ||
                    (res.behind && (res.granted || (res.behind != 1))))
                    __builtin_trap();
            } else {
                if (sr.status != AX_OK && sr.status != AX_ESTALE)
                    __builtin_trap();
                if (sr.found && (sr.len > AXD_STATE_VALUE_MAX || (sr.len && !sr.data)))
                    __builtin_trap();
                volatile unsigned char sink = 0;
                for (size_t i = 0; sr.found && i < sr.len; i++) /* the bytes are really there */
                    sink ^= ((const unsigned char *)sr.data)[i];
                (void)sink;
            }
        }
        freeReplyObject(reply);
    }
    redisReaderFree(rd);
    return 0;
}
