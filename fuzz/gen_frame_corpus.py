#!/usr/bin/env python3
# Writes the hand-made seed corpus of fuzz_frame (fuzz/corpus/frame/): one valid frame
# of each client-plane type, a pipelined stream, and malformed frames near each check.
# Layouts follow proto/PROTOCOL.md. The output is committed; files named by a SHA-1
# are inputs libFuzzer found that add coverage (kept small), not written by this script.
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "frame")


def hdr(t, body, flags=0, req=1, magic=0x4158, ver=1, rsv=0, blen=None):
    return struct.pack(">HBBHHII", magic, ver, t, flags, rsv, req,
                       len(body) if blen is None else blen) + body


def s(b):
    b = b.encode() if isinstance(b, str) else b
    return struct.pack(">H", len(b)) + b


def blob(b):
    b = b.encode() if isinstance(b, str) else b
    return struct.pack(">I", len(b)) + b


def ref(node, i, gen):
    return s(node) + struct.pack(">QI", i, gen)


def tgt_name(n):
    return b"\x01" + s(n)


def tgt_key(t, k):
    return b"\x02" + s(t) + s(k)


frames = {
    "hello": hdr(0x01, struct.pack(">HH", 1, 1) + s("axctl")),
    "hello_ok": hdr(0x02, struct.pack(">H", 1) + s("node-a@boot-1f-session-1") + struct.pack(">I", 1 << 20)),
    "error": hdr(0x03, struct.pack(">i", -3) + s("mailbox full")),
    "ok": hdr(0x04, b""),
    "spawn": hdr(0x10, s("counter") + s("c1") + blob('{"restart":"permanent","key":"k"}')),
    "ref": hdr(0x11, ref("node-a", 7, 1)),
    "tell_noreply": hdr(0x12, tgt_name("room") + struct.pack(">Q", 0) + s("say") + blob("hi"), flags=1),
    "ask_key": hdr(0x13, tgt_key("counter", "user 42") + struct.pack(">Q", 9) + s("get") + blob("") + struct.pack(">I", 5000)),
    "reply": hdr(0x14, blob("42")),
    "stop_ref": hdr(0x15, b"\x00" + ref("", 3, 2)),
    "resolve": hdr(0x16, tgt_name("room")),
    "exit": hdr(0x17, tgt_name("worker") + s("shutdown:maintenance")),
    "exit_bad_reason": hdr(0x17, tgt_name("worker") + s("two words")),
    "plugin_load": hdr(0x23, s("/usr/lib/axactor/plugins/counter.so")),
    "plugin_unload": hdr(0x24, s("counter")),
    "json": hdr(0x2f, blob('{"actors":[]}')),
    "stream": hdr(0x01, struct.pack(">HH", 1, 1) + s("")) + hdr(0x20, b"", req=2)
    + hdr(0x21, b"", req=3) + hdr(0x22, b"", req=4) + hdr(0x12, tgt_name("x") + bytes(8) + s("m") + blob(""), req=5)[:-2],
    # malformed
    "bad_magic": hdr(0x04, b"", magic=0x4759),
    "bad_reserved": hdr(0x04, b"", rsv=1),
    "oversize": hdr(0x14, b"", blen=0xFFFFFFFF),
    "blob_overrun": hdr(0x14, struct.pack(">I", 0xFFFFFFF0) + b"abc"),
    "bad_target_kind": hdr(0x15, b"\x07" + s("x")),
    "ask_zero_timeout": hdr(0x13, tgt_name("a") + bytes(8) + s("m") + blob("") + bytes(4)),
}

os.makedirs(OUT, exist_ok=True)
for name, data in frames.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print(f"wrote {len(frames)} files to {OUT}")
