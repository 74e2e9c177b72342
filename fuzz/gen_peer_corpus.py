#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_peer (fuzz/corpus/peer): well-formed and broken peer
frames as a node would receive them. Run from the source tree: fuzz/gen_peer_corpus.py"""
import os, struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus', 'peer')

def hdr(t, body, session=0, seq=0, mac=b'\0' * 16, magic=0x4150, ver=1, flags=0):
    return struct.pack('>HBBHHIIQ', magic, ver, t, flags, 0, session, len(body), seq) + mac + body

def s(x):
    x = x.encode() if isinstance(x, str) else x
    return struct.pack('>H', len(x)) + x

def blob(x):
    return struct.pack('>I', len(x)) + x

A = 'node-a@boot-0000000000000001-session-1'
B = 'node-b@boot-0000000000000002-session-1'
params = struct.pack('>I', 256) + s('redis:127.0.0.1:6379/0/axactor:')  # shard count, lease store
hello = struct.pack('>HHI', 1, 1, 3) + s(A) + s('node-b') + bytes(32) + params
ack = struct.pack('>HI', 1, 3) + s(B) + bytes(32) + bytes(32) + params
tell = struct.pack('>QIQI', 1, 1, 2, 1) + s('inc') + blob(b'42')
ask = struct.pack('>QQIQII', 7, 1, 1, 0, 0, 1000) + s('get') + blob(b'')
reply = struct.pack('>QI', 7, 0) + blob(b'5')
mon = struct.pack('>QQIQI', 1, 2, 1, 3, 1)
down = struct.pack('>QQI', 1, 3, 1) + s('noconnection')
seeds = {
    'hello': hdr(0x40, hello),
    'hello_bad_range': hdr(0x40, struct.pack('>HHI', 9, 7, 0) + s(A) + s('') + bytes(32)),
    'hello_no_session': hdr(0x40, struct.pack('>HHI', 1, 1, 0) + s('node-a@boot-zz') + s('') + bytes(32)),
    'hello_then_auth': hdr(0x40, hello) + hdr(0x42, bytes(32)),
    'hello_no_params': hdr(0x40, struct.pack('>HHI', 1, 1, 3) + s(A) + s('node-b') + bytes(32)),
    'hello_zero_shards': hdr(0x40, struct.pack('>HHI', 1, 1, 3) + s(A) + s('') + bytes(32) + struct.pack('>I', 0) + s('memory')),
    'hello_store_ctl': hdr(0x40, struct.pack('>HHI', 1, 1, 3) + s(A) + s('') + bytes(32) + struct.pack('>I', 16) + s(b'redis\x01x')),
    'hello_ack': hdr(0x41, ack),
    'auth_ok_forged': hdr(0x43, b'', session=1, seq=1, mac=b'\x11' * 16),
    'refuse': hdr(0x44, struct.pack('>i', -20) + s('authentication failed')),
    'ping': hdr(0x48, struct.pack('>QQB', 1, 2, 1), session=1, seq=1),
    'ping_old': hdr(0x48, struct.pack('>QQ', 1, 2), session=1, seq=1),
    'close': hdr(0x4a, struct.pack('>i', -22) + s('shutdown'), session=1, seq=2),
    'tell_batch': hdr(0x60, tell * 3, session=1, seq=3),
    'tell_before_auth': hdr(0x60, tell, session=5, seq=1, mac=b'\x42' * 16),
    'ask': hdr(0x61, ask, session=1, seq=4),
    'reply': hdr(0x62, reply, session=1, seq=5),
    'epochs': hdr(0x53, struct.pack('>IQ', 3, 1796161848072) * 4, session=1, seq=8),
    'epochs_zero': hdr(0x53, struct.pack('>IQ', 3, 0), session=1, seq=8),
    'released': hdr(0x54, struct.pack('>IQ', 5, 1796161848073), session=1, seq=9),
    'status_req': hdr(0x55, struct.pack('>Q', 1) * 2, session=1, seq=10),
    'status': hdr(0x56, struct.pack('>Q', 1) + blob(b'{"node":"node-b","actors":3,"counters":{"asks":7}}'),
                  session=1, seq=11),
    'status_nul': hdr(0x56, struct.pack('>Q', 1) + blob(b'{"a":\0}'), session=1, seq=11),
    'monitor_down': hdr(0x50, mon, session=1, seq=6) + hdr(0x52, down, session=1, seq=7),
    'truncated_record': hdr(0x60, tell[:-1], session=1, seq=3),
    'oversize': hdr(0x60, b'', session=1)[:12] + struct.pack('>I', 0xffffffff) + bytes(24),
    'bad_magic': hdr(0x40, hello, magic=0x4158),
    'bad_flags': hdr(0x48, struct.pack('>QQB', 1, 2, 0x80), flags=1),
    'client_type': hdr(0x12, b''),
}
os.makedirs(OUT, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(OUT, name), 'wb') as f:
        f.write(data)
