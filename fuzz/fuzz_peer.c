/* libFuzzer target for the peer protocol: treats the input as the byte stream a node
 * receives from a peer and runs it through what a link does with it — header decode
 * (with max_frame), body validation of every frame, and the handshake state machine in
 * both roles (responder fed from the first byte, initiator after its HELLO) — plus the
 * wire-id parser on the raw input. Nothing may read out of bounds, leak or abort. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "handshake.h"
#include "node_id.h"
#include "peer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t nonce[AX_PEER_NONCE_SIZE] = {1, 2, 3};
    axd_hs resp, init;
    axd_hs_cfg rc = {.self_id = "node-b@boot-0000000000000002-session-1", .token = "t", .token_len = 1,
                    .nonce = nonce};
    axd_hs_cfg ic = {.self_id = "node-a@boot-0000000000000001-session-1", .expect_name = "node-b", .token = "t",
                    .token_len = 1, .nonce = nonce};
    ax_wbuf out;
    axd_node_id id;
    int resp_live = 1, init_live = 1;
    size_t off = 0;

    ax_wbuf_init(&out);
    (void)axd_node_id_parse((const char *)data, size, &id);
    if (axd_hs_init(&resp, AXD_HS_RESPONDER, &rc) != 0 || axd_hs_init(&init, AXD_HS_INITIATOR, &ic) != 0)
        __builtin_trap();
    axd_hs_start(&init, &out);
    while (off < size) {
        ax_peer_hdr h;
        const char *why = NULL;
        int r = ax_peer_hdr_decode(data + off, size - off, AX_PEER_MAX_FRAME_DEFAULT, &h, &why);
        if (r == 1)
            break;
        if (r < 0) {
            if (!why || !*why)
                __builtin_trap(); /* every rejection says why */
            off++;
            continue;
        }
        size_t total = AX_PEER_HDR_SIZE + (size_t)h.body_len;
        if (total > size - off)
            break;
        why = NULL;
        r = ax_peer_body_validate(h.type, data + off + AX_PEER_HDR_SIZE, h.body_len, &why);
        if (r != 0 && (r != AX_EPROTO || !why || !*why))
            __builtin_trap();
        out.len = 0;
        if (resp_live) {
            r = axd_hs_input(&resp, data + off, total, &out);
            if (r == AXD_HS_READY)
                (void)axd_hs_accept(&resp, &out);
            resp_live = r == AXD_HS_MORE;
        }
        out.len = 0;
        if (init_live)
            init_live = axd_hs_input(&init, data + off, total, &out) == AXD_HS_MORE;
        off += total;
    }
    for (int t = 0x40; t < 0x80; t++)
        (void)ax_peer_body_validate((uint8_t)t, data, size, NULL);
    axd_hs_clear(&resp);
    axd_hs_clear(&init);
    ax_wbuf_free(&out);
    return 0;
}
