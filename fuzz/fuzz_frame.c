/* libFuzzer target for the frame codec: treats the input as a byte stream from a
 * client or daemon and runs it through the same steps a connection does (header
 * decode, then ax_body_validate of the body), plus a small-max_body header decode. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    ax_frame_hdr h;
    const char *why;
    int rc, t;

    /* a tight limit exercises the ETOOBIG path on every header */
    (void)ax_frame_hdr_decode(data, size, AX_FRAME_MAX_MIN, &h, &why);
    while (off < size) {
        why = NULL;
        rc = ax_frame_hdr_decode(data + off, size - off, AX_FRAME_MAX_DEFAULT, &h, &why);
        if (rc == 1)
            break; /* need more bytes */
        if (rc < 0) {
            if (!why || !*why)
                __builtin_trap(); /* every rejection must say why */
            /* a connection would close here; skip a byte to keep exploring */
            off++;
            continue;
        }
        off += AX_FRAME_HDR_SIZE;
        if (h.body_len > size - off)
            break; /* body not fully received */
        why = NULL;
        rc = ax_body_validate(h.type, data + off, h.body_len, &why);
        if (rc != 0 && (rc != AX_EPROTO || !why || !*why))
            __builtin_trap();
        off += h.body_len;
    }
    /* the whole input as a body of every type must never read out of bounds */
    for (t = 0; t < 256; t++)
        if (ax_frame_type_known((uint8_t)t))
            (void)ax_body_validate((uint8_t)t, data, size, &why);
    return 0;
}
