#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/seeds/<target>/ (deterministic).

Run from anywhere: `python3 fuzz/seeds/generate.py`. The files are committed;
rerun after changing an input layout (for `connection_ops`, `reliable_journal`
and `session_ops`, their `Op` enums, configurations or `Input`: the encoders
below mirror arbitrary 1.5's format).
"""

import base64
import hashlib
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
KEY = b"hookup-fuzz-key!"
KEY_B64 = base64.b64encode(KEY)
ACCEPT = base64.b64encode(hashlib.sha1(KEY_B64 + GUID).digest())


def frame(opcode, payload, fin=True, mask=None, rsv=0, ext=None):
    """One frame; `ext` forces the 16/64-bit length form (non-minimal allowed)."""
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    mbit = 0x80 if mask else 0
    if ext == 64 or (ext is None and n > 0xFFFF):
        head = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    elif ext == 16 or (ext is None and n > 125):
        head = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, mbit | n])
    if mask:
        head += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + payload


M = b"\x37\xfa\x21\x3d"  # the RFC 6455 example key


def close_payload(code, reason=b""):
    return struct.pack(">H", code) + reason


FRAME_STREAMS = {
    "text": frame(1, b"Hello"),
    "text_masked": frame(1, b"Hello", mask=M),
    "fragmented": frame(1, b"Hel", fin=False) + frame(0, b"lo"),
    "fragmented_masked_ping_between": frame(1, b"Hel", fin=False, mask=M)
    + frame(9, b"p", mask=M)
    + frame(0, b"lo", mask=M),
    "ping_pong": frame(9, b"Hello") + frame(10, b"Hello", mask=M),
    "binary_256": frame(2, bytes(range(256))),
    "binary_256_masked": frame(2, bytes(range(256)), mask=M),
    "binary_64bit_len": frame(2, b"\x00" * 70000)[:40],
    "non_minimal_len16": frame(2, b"abc", ext=16),
    "non_minimal_len64": frame(2, b"abc", ext=64, mask=M),
    "close_normal": frame(8, close_payload(1000, b"bye")),
    "close_masked": frame(8, close_payload(1001), mask=M),
    "close_empty": frame(8, b""),
    "close_bad_code": frame(8, close_payload(1005)),
    "close_one_byte": frame(8, b"\x03"),
    "invalid_utf8": frame(1, b"\xc3\x28"),
    "utf8_split_across_fragments": frame(1, "κό".encode()[:3], fin=False)
    + frame(0, "κό".encode()[3:]),
    "rsv_set": frame(1, b"x", rsv=4),
    "reserved_opcode": frame(3, b"x"),
    "continuation_first": frame(0, b"x"),
    "long_ping": frame(9, b"x" * 126),
    "many": b"".join(frame(2, bytes([i]) * i) for i in range(20)),
    "many_masked": b"".join(frame(1, b"ab" * i, mask=M) for i in range(20)),
}

REQUEST = (
    b"GET /chat?room=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
    b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)

REQUESTS = {
    # ctl 0x80: accept picks the first subprotocol.
    "rfc": (0x80, REQUEST),
    "rfc_chunked": (0x02 | (3 << 2), REQUEST),
    "rfc_with_frames": (0x00, REQUEST + frame(1, b"hi", mask=M) + frame(9, b"", mask=M)),
    "rfc_with_close": (0x00, REQUEST + frame(8, close_payload(1000), mask=M)),
    "plain_http": (0x00, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    "plain_http_reject_404": (0x40, b"GET /favicon.ico HTTP/1.1\r\nHost: x\r\n\r\n"),
    "version_8": (0x00, REQUEST.replace(b"Version: 13", b"Version: 8")),
    "post": (0x00, REQUEST.replace(b"GET", b"POST")),
    "http10": (0x00, REQUEST.replace(b"HTTP/1.1", b"HTTP/1.0")),
    "no_host": (0x00, REQUEST.replace(b"Host: server.example.com\r\n", b"")),
    "short_key": (0x00, REQUEST.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"c2hvcnQ=")),
    "two_keys": (0x00, REQUEST.replace(b"\r\n\r\n", b"\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")),
    "partial_eof": (0x20, REQUEST[:60]),
    "partial_timeout": (0x40, REQUEST[:60]),
    "too_large": (0x01, REQUEST.replace(b"Origin", b"X-Pad: " + b"a" * 300 + b"\r\nOrigin")),
    "garbage": (0x00, b"\x00\x01garbage\r\n\r\n"),
    "upgrade_h2c": (0x00, REQUEST.replace(b"Upgrade: websocket", b"Upgrade: h2c")),
}


def response(extra=b"", accept=ACCEPT):
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n" + extra + b"\r\n"
    )


RESPONSES = {
    # ctl bit 0 clear: raw response.
    "raw_valid": (0x00, response()),
    "raw_valid_with_frames": (0x00, response() + frame(1, b"hi") + frame(9, b"p") + frame(8, close_payload(1000))),
    "raw_valid_chunked": (0x04 | (2 << 3), response() + frame(2, b"x" * 200)),
    "raw_protocol": (0x02, response(b"Sec-WebSocket-Protocol: chat\r\n")),
    "raw_unoffered_protocol": (0x00, response(b"Sec-WebSocket-Protocol: chat\r\n")),
    "raw_extension": (0x00, response(b"Sec-WebSocket-Extensions: permessage-deflate\r\n")),
    "raw_wrong_accept": (0x00, response(accept=b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")),
    "raw_two_accepts": (0x00, response(b"Sec-WebSocket-Accept: " + ACCEPT + b"\r\n")),
    "raw_200": (0x00, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    "raw_partial_eof": (0x80, response()[:50]),
    "raw_masked_frame": (0x00, response() + frame(1, b"hi", mask=M)),
    "small_head": (0x40, response()),
    # ctl bit 0 set: [count, (pos, op, value)*, tail].
    "valid_no_edit": (0x01, b"\x00" + frame(1, b"hello")),
    "valid_protocol_no_edit": (0x03, b"\x00"),
    "valid_flip_accept": (0x01, b"\x01" + bytes([100, 0, 0x20])),
    "valid_truncate": (0x01, b"\x01" + bytes([90, 3, 0])),
    "valid_insert": (0x01, b"\x02" + bytes([10, 1, ord(" "), 40, 2, 0]) + frame(2, b"\x01\x02")),
}


# ---------------------------------------------------------------- connection_ops
#
# An encoder for the `arbitrary` (1.5) format of `connection_ops`'s `Input`:
# integers little-endian from the front, bool = byte & 1, Option = bool then
# value, enum = u32 tag t choosing variant (t * count) >> 32, Vec (not last) =
# a `1` byte before each element and a `0` after, String = length taken from
# the END of the data (one byte while at most 257 bytes remain), the last
# field (`steps`) = `1` byte before each element until the data ends.

OPS = [
    "Input", "Frame", "Handshake", "SendText", "SendBinary", "Send", "SendFragment",
    "Ping", "Pong", "Close", "Sleep", "Advance", "TimeoutNow", "Eof", "Accept",
    "Reject", "Write", "Flush", "PollEvents", "Deliver", "Compressed",
]
SETUPS = ["Server", "Client", "OpenServer", "OpenClient", "Pair", "OpenPair"]


def tag(index, count):
    t = (index * 2**32 + count - 1) // count
    assert (t * count) >> 32 == index
    return struct.pack("<I", t)


def u16(v):
    return struct.pack("<H", v)


def vec_u8(data):
    return b"".join(b"\x01" + bytes([b]) for b in data) + b"\x00"


def fuzz_config(close_timeout_ms=1000, lazy_events=False, lazy_writes=False,
                auto_accept=True, handshake_timeout_ms=None, deflate=None, max_frame=0,
                max_message=0):
    """Zero limit fields give usable limits (see `limit()` in the target):
    frames up to 64 + max_frame bytes, messages up to 128 + max_message."""
    out = u16(max_frame) + u16(max_message) + u16(0) * 2 + b"\x01\x00"  # limits; auto_pong on
    out += b"\x00" if handshake_timeout_ms is None else b"\x01" + u16(handshake_timeout_ms)
    out += u16(close_timeout_ms) + b"\x00"  # zero_copy
    out += bytes([int(lazy_writes), int(lazy_events), int(auto_accept)])
    out += b"\x00" if deflate is None else b"\x01" + deflate
    return out


def fuzz_deflate(threshold=0, level=1, local_bits=15, remote_bits=15,
                 local_no_context_takeover=False, remote_no_context_takeover=False):
    """A `FuzzDeflate` (window bits are encoded as 7 + v % 10)."""
    return bytes([threshold, level, local_bits - 7, remote_bits - 7,
                  int(local_no_context_takeover), int(remote_no_context_takeover)])


class Ops:
    """Builds the step list; strings need the tail, so it is kept apart."""

    def __init__(self):
        self.front = b""
        self.tail = b""  # consumed from the end, first string first

    def op(self, name, fields=b"", side=False):
        self.front += b"\x01" + bytes([int(side)]) + tag(OPS.index(name), len(OPS)) + fields
        return self

    def string(self, text):
        # Lengths come from the end: the first string parsed takes the last byte.
        assert len(text) < 256
        self.tail = bytes([len(text)]) + self.tail
        return text.encode()

    def frame(self, opcode, payload=b"", fin=True, flags=0, split=0, side=False):
        return self.op("Frame", bytes([opcode, int(fin), flags, split]) + vec_u8(payload), side)

    def handshake(self, protocol=False, extensions=None, side=False):
        ext = b"\x00" if extensions is None else b"\x01" + self.string(extensions)
        return self.op("Handshake", bytes([int(protocol)]) + ext, side)

    def compressed(self, opcode, data, fin=True, rsv=0, level=1, finish=False,
                   trailer=False, split=0, repeat=0, side=False):
        """`rsv` is XOR-ed with RSV1: 0 sends RSV1 alone."""
        fields = bytes([opcode, int(fin), rsv, level, int(finish), int(trailer), split])
        return self.op("Compressed", fields + u16(repeat) + vec_u8(data), side)

    def build(self, setup, configs):
        data = tag(SETUPS.index(setup), len(SETUPS)) + configs[0] + configs[1] + self.front
        # Strings read their length while at most 257 bytes remain (1 byte).
        assert len(data) + len(self.tail) <= 257, "seed too long for 1-byte string lengths"
        return data + self.tail


def connection_ops_seeds():
    cfg = fuzz_config()
    seeds = {}

    # Frame opcodes index [Continuation, Text, Binary, Close, Ping, Pong].
    TEXT, BINARY, CLOSE, PING = 1, 2, 3, 4
    NONE = b"\x00"
    deliver = NONE + NONE  # whole, uncorrupted

    # An honest pair: handshake, a message each way, server-initiated close.
    o = Ops()
    o.op("Deliver", deliver).op("Deliver", deliver, side=True)
    o.op("SendText", o.string("hello"))
    o.op("Deliver", deliver)
    o.op("SendBinary", vec_u8(b"\x00\x01\x02"), side=True)
    o.op("Deliver", deliver, side=True)
    o.op("Close", u16(0) + o.string("bye"), side=True)
    o.op("Deliver", deliver, side=True).op("Deliver", deliver)
    o.op("Eof")
    seeds["pair_messages_and_close"] = o.build("Pair", [cfg, cfg])

    # An open pair with fragments, pings and partial vectored writes.
    lazy = fuzz_config(lazy_writes=True)
    o = Ops()
    o.op("SendFragment", bytes([1]) + vec_u8("κό".encode()[:3]) + bytes([0]))
    o.op("Ping", vec_u8(b"p"))
    o.op("SendFragment", bytes([0]) + vec_u8("κό".encode()[3:]) + bytes([1]))
    o.op("Write", u16(5)).op("Deliver", b"\x01" + u16(3) + NONE)
    o.op("Flush").op("Deliver", deliver)
    o.op("Flush", side=True).op("Deliver", deliver, side=True)
    seeds["open_pair_fragments_partial_writes"] = o.build("OpenPair", [lazy, lazy])

    # A server fed a valid request, accepting with a subprotocol, then frames.
    o = Ops()
    o.handshake(protocol=True).op("PollEvents").op("Accept", b"\x01")
    o.frame(TEXT, b"hi").frame(PING, b"p").frame(BINARY, b"\x00" * 40, split=7)
    o.frame(CLOSE, b"\x03\xe8")
    seeds["server_handshake_frames_close"] = o.build("Server", [fuzz_config(auto_accept=False), cfg])

    # A client fed a valid 101, then a protocol error (RSV bits).
    o = Ops()
    o.handshake(protocol=True).frame(TEXT, b"hi").frame(TEXT, b"x", flags=0x72)
    seeds["client_handshake_then_rsv"] = o.build("Client", [cfg, cfg])

    # Handshake timeout on a server that saw half a request.
    o = Ops()
    o.op("Input", vec_u8(b"GET / HTTP/1.1\r\n")).op("Advance", u16(3000))
    seeds["server_handshake_timeout"] = o.build(
        "Server", [fuzz_config(handshake_timeout_ms=2000), cfg])

    # A client closes; a message and the server's close frame arrive while
    # events are left undrained; the close timer fires; then the drain.
    o = Ops()
    o.op("Close", u16(0) + o.string(""))
    o.frame(TEXT, b"hi").frame(CLOSE)
    o.op("Advance", u16(2000)).op("PollEvents").op("Eof")
    seeds["deferred_close_then_close_timeout"] = o.build(
        "OpenClient", [fuzz_config(lazy_events=True), cfg])

    # permessage-deflate. Compressed opcodes index [Continuation, Text, Binary].
    C_CONT, C_TEXT, C_BINARY = 0, 1, 2
    pmd = fuzz_config(deflate=fuzz_deflate())

    # An honest pair negotiating deflate (a 9-bit client window, the server
    # resets its context): messages both ways, a compressed fragmented
    # message, then a close.
    o = Ops()
    o.op("Deliver", deliver).op("Deliver", deliver, side=True)
    o.op("SendText", o.string("hello hello hello hello"))
    o.op("SendText", o.string("hello hello"))
    o.op("SendBinary", vec_u8(b"\x00" * 12), side=True)
    o.op("SendFragment", bytes([1]) + vec_u8(b"abcabc") + bytes([0]))
    o.op("SendFragment", bytes([1]) + vec_u8(b"abc") + bytes([1]))
    o.op("Close", u16(0) + o.string(""))
    o.op("Deliver", deliver).op("Deliver", deliver, side=True)
    o.op("Deliver", deliver).op("Deliver", deliver, side=True)
    seeds["deflate_pair_messages_and_close"] = o.build("Pair", [
        fuzz_config(deflate=fuzz_deflate(local_bits=9)),
        fuzz_config(deflate=fuzz_deflate(level=6, local_no_context_takeover=True))])

    # An open pair with deflate: context takeover, partial deliveries.
    o = Ops()
    for side in (False, True):
        o.op("SendText", o.string("abcdefgh" * 4), side=side)
        o.op("SendText", o.string("abcdefgh" * 4), side=side)
        o.op("Deliver", b"\x01" + u16(5) + NONE, side=side).op("Deliver", deliver, side=side)
    seeds["deflate_open_pair"] = o.build("OpenPair", [pmd, pmd])

    # A client offering deflate, a 101 accepting it, then a decompression
    # bomb (1 MiB of zeros in about 1 KiB: compressed, it fits the limits of
    # about 4 KiB).
    o = Ops()
    o.handshake(extensions="permessage-deflate; client_max_window_bits=10")
    o.compressed(C_TEXT, b"ok ok ok")
    o.compressed(C_BINARY, b"\x00" * 16, repeat=0xFFFF, level=9, split=3)
    seeds["deflate_client_bomb"] = o.build(
        "Client", [fuzz_config(deflate=fuzz_deflate(), max_frame=0x0FFF, max_message=0x0FFF), cfg])

    # A server accepting an offer, then compressed frames: a fragmented
    # message (compressed continuation), a message ended by a final block,
    # one with the trailer left in, and RSV1 on a continuation (an error).
    # (The server accepts as the request arrives.)
    o = Ops()
    o.handshake(extensions="x-other, permessage-deflate; server_no_context_takeover")
    o.compressed(C_BINARY, b"final", finish=True)
    o.compressed(C_TEXT, b"trailer", trailer=True, split=5)
    o.compressed(C_TEXT, b"part 1 ", fin=False)
    o.compressed(C_CONT, b"part 2", rsv=0b100)
    seeds["deflate_server_frames"] = o.build("Server", [pmd, cfg])
    return seeds


# ---------------------------------------------------------------- deflate_negotiation
#
# `[c0, c1, c2, c3, value...]`: server config (c0 = window bits 7 + nibble %
# 10, low nibble ours, high nibble the peer's; c1 = no-context-takeover
# flags: 1 ours, 2 the peer's), client config (c2, c3), then header values
# separated by `\n`.

def bits(local, remote):
    return (local - 7) | ((remote - 7) << 4)


DEFAULT = bytes([bits(15, 15), 0])
EXTENSIONS = {
    "plain": (DEFAULT, DEFAULT, b"permessage-deflate"),
    "client_max_window_bits_hint": (DEFAULT, DEFAULT,
                                    b"permessage-deflate; client_max_window_bits"),
    # RFC 7692 section 7.1.3's example: two offers, the first one preferred.
    "two_offers": (DEFAULT, DEFAULT,
                   b"permessage-deflate; client_max_window_bits=10, permessage-deflate"),
    # What Autobahn's 13.x clients offer.
    "autobahn_13": (bytes([bits(9, 15), 1]), bytes([bits(15, 15), 1]),
                    b"permessage-deflate; client_no_context_takeover; client_max_window_bits"),
    "server_window_8": (bytes([bits(12, 9), 2]), DEFAULT,
                        b"permessage-deflate; server_max_window_bits=8"),
    "quoted": (DEFAULT, bytes([bits(15, 10), 2]),
               b'permessage-deflate; client_max_window_bits="10"; server_no_context_takeover'),
    "repeated_param": (DEFAULT, DEFAULT,
                       b"permessage-deflate; server_no_context_takeover; server_no_context_takeover"),
    "bad_values": (DEFAULT, DEFAULT,
                   b"permessage-deflate; server_max_window_bits=08, "
                   b"permessage-deflate; client_max_window_bits=16, x-foo; a=\"b,c\""),
    "two_lines": (DEFAULT, bytes([bits(10, 15), 3]),
                  b"x-webkit-deflate-frame\nPERMESSAGE-DEFLATE ; server_max_window_bits = 11"),
    "unknown_param": (DEFAULT, DEFAULT, b"permessage-deflate; foo, permessage-deflate;"),
}


def legacy_envelope_seeds():
    """The legacy jsonProtocol vectors, one per seed, and all in one."""
    import json
    path = os.path.join(HERE, "..", "..", "hookup-proto", "tests", "vectors", "legacy.json")
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    cases = doc["valid"] + doc["invalid"]
    seeds = {"%02d" % i: c["input"].encode() for i, c in enumerate(cases)}
    seeds["all_lines"] = "\n".join(c["input"].replace("\n", " ") for c in cases).encode()
    return seeds


# ---------------------------------------------------------------- reliable_journal
#
# `[n, ops: n bytes, file...]`: `ops` is the `arbitrary` encoding of `Ops`
# (`cuts: [u16; 3]`, then the `Op` list to the end); the file is a journal
# (see hookup-proto/src/reliable/journal.rs): magic, then records
# `len: u32 LE | crc32: u32 LE | body`.

J_OPS = ["Add", "Done", "Session", "Acked", "Received", "Snapshot"]


def j_record(kind, n, rest=b""):
    body = bytes([kind]) + struct.pack("<Q", n) + rest
    return struct.pack("<II", len(body), zlib.crc32(body)) + body


def j_add(jid, payload, text=True):
    return j_record(1, jid, bytes([int(text)]) + payload)


def j_session(sid, acked, received):
    return j_record(3, acked, struct.pack("<Q", received) + bytes([len(sid)]) + sid)


class JOps:
    def __init__(self, cuts=(0, 0, 0)):
        self.data = b"".join(u16(c) for c in cuts)

    def op(self, name, fields=b""):
        self.data += b"\x01" + tag(J_OPS.index(name), len(J_OPS)) + fields
        return self

    def add(self, payload, text=True):
        return self.op("Add", bytes([int(text)]) + vec_u8(payload))

    def build(self, file):
        assert len(self.data) < 256
        return bytes([len(self.data)]) + self.data + file


def reliable_journal_seeds():
    u64 = lambda v: struct.pack("<Q", v)
    appends = JOps(cuts=(7, 40, 1000))
    appends.add(b"new one").add(b"\x00\x01", text=False)
    appends.op("Acked", bytes([0]) + u64(0)).op("Received", u64(3))
    appends.op("Done", u64(0) + b"\x00").op("Session", vec_u8(b"sess-2"))
    appends.add(b"after").op("Snapshot").add(b"last")
    none = JOps()
    v2 = (b"HKJ2" + j_add(1, b"early") + j_session(b"sess-1", 0, 0)
          + j_add(2, b"\x00\xff\n\x00", text=False) + j_add(3, b"three")
          + j_record(4, 1) + j_record(5, 7) + j_record(4, 0) + j_record(2, 3)
          + j_record(5, 9))
    v1 = b"HKJ1" + j_add(1, b"one") + j_add(2, b"two") + j_record(2, 1)
    return {
        "empty": none.build(b""),
        "torn_header": appends.build(b"HK"),
        "bad_magic": none.build(b"HKJ3" + j_add(1, b"x")),
        "header_only_then_appends": appends.build(b"HKJ2"),
        "v2_all_records": none.build(v2),
        "v2_all_records_then_appends": appends.build(v2),
        "v2_torn_tail": appends.build(v2[:-5]),
        "v2_corrupt_crc": none.build(v2[:30] + bytes([v2[30] ^ 1]) + v2[31:]),
        "v1_then_appends": appends.build(v1),
        "v1_with_v2_record": none.build(v1 + j_session(b"s", 0, 0)),
        "max_id": none.build(b"HKJ2" + j_add(2**64 - 1, b"crafted")),
        # Appends after a crafted id: u64::MAX is a corrupt tail (found by
        # this target: `add` overflowed after recovering it); after
        # u64::MAX - 2 one id is left, then `add` has none.
        "max_id_then_appends": appends.build(b"HKJ2" + j_add(2**64 - 1, b"crafted")),
        "last_ids_then_appends": appends.build(b"HKJ2" + j_add(2**64 - 3, b"crafted")),
        "long_session_id": none.build(b"HKJ2" + j_session(b"x" * 65, 0, 0)),
    }


# ---------------------------------------------------------------- session_ops
#
# The `arbitrary` encoding of `session_ops`'s `Input`: `FuzzConfig` (two
# `SideConfig`s, then the shared fields), then the `Op` list to the end.

S_OPS = [
    "ClientSend", "ServerSend", "Burst", "Deliver", "DeliverChunked", "Flush", "Connect",
    "RefuseConnect", "Cut", "Abandon", "ServerShutdown", "ServerAbort", "ClientShutdown",
    "ClientAbort", "Sleep", "Advance", "TimeoutNow", "PollEvents", "InjectRaw",
    "InjectEnvelope",
]


def opt_u16(v):
    return b"\x00" if v is None else b"\x01" + u16(v)


def side_config(max_msgs=7, max_bytes=1000, drop_oldest=False, ack_delay=19, ack_every=31,
                ping=None, pong=2000, greeting=2000, close=1000, window=0xFFFF,
                releases=True, lazy=False):
    """Values as the target maps them: 1 + v % 8 messages, 16 + v % 512 bytes, ..."""
    return (bytes([max_msgs]) + u16(max_bytes - 16) + bytes([int(drop_oldest), ack_delay,
                                                                ack_every])
            + opt_u16(ping) + u16(pong) + u16(greeting) + u16(close) + u16(window)
            + bytes([int(releases), int(lazy)]))


def session_config(client=None, server=None, reconnect=7, backoff_min=9, backoff_max=200,
                   ttl=5000, max_sessions=3, max_bytes=2000, plain_accepts=0,
                   auto_connect=False, inject=False, seed=1):
    plain = 13 + plain_accepts if plain_accepts else 0
    return ((client or side_config()) + (server or side_config())
            + bytes([reconnect, backoff_min]) + u16(backoff_max) + u16(ttl)
            + bytes([max_sessions]) + u16(max_bytes)
            + bytes([plain, int(auto_connect), int(inject)]) + struct.pack("<Q", seed))


class SOps:
    def __init__(self):
        self.data = b""

    def op(self, name, fields=b""):
        self.data += b"\x01" + tag(S_OPS.index(name), len(S_OPS)) + fields
        return self

    def send(self, server=False, text=True, filler=5, ack=None):
        return self.op("ServerSend" if server else "ClientSend",
                       bytes([int(text), filler]) + opt_u16(ack))

    def deliver(self, to_server, link=0, max=None):
        return self.op("Deliver", bytes([int(to_server), link]) + opt_u16(max))

    def exchange(self, rounds=3):
        for _ in range(rounds):
            self.deliver(True).deliver(False)
        return self

    def advance(self, ms):
        return self.op("Advance", u16(ms))

    def build(self, config):
        return config + self.data


def session_ops_seeds():
    seeds = {}

    # Connect, greet, messages both ways (some with ack deadlines), acks.
    o = SOps().op("Connect").exchange()
    o.send().send(text=False, ack=500).send(server=True).send(server=True, ack=300)
    o.exchange().advance(50).exchange().advance(1000).exchange()
    seeds["pair_exchange"] = o.build(session_config())

    # Messages in flight when the link is cut; reconnect and resume.
    o = SOps().op("Connect").exchange()
    o.send().send(server=True).send().deliver(True, max=9)
    o.op("Cut", bytes([0, 1, 1])).advance(300).op("Connect").exchange(4)
    o.advance(100).exchange()
    seeds["cut_and_resume"] = o.build(session_config())

    # The parked session expires: the client gets a new session and sends
    # its outbox again.
    o = SOps().op("Connect").exchange()
    o.send().deliver(True).send(server=True, ack=100)
    o.op("Cut", bytes([0, 1, 1])).advance(3000).op("Connect").exchange(4)
    seeds["expiry_new_session"] = o.build(session_config(ttl=999))

    # A lazy server application takes one message and goes away; chunked
    # deliveries.
    o = SOps().op("Connect").exchange().op("PollEvents", bytes([1, 0, 1]))
    o.exchange().op("PollEvents", bytes([1, 0, 0])).exchange()
    o.send().send().send().op("DeliverChunked", bytes([1, 0, 3, 4]))
    o.op("PollEvents", bytes([1, 0, 1])).op("Abandon", b"\x00").exchange()
    o.advance(400).op("Connect").exchange().op("PollEvents", bytes([1, 0, 0])).exchange()
    seeds["lazy_abandon"] = o.build(session_config(server=side_config(lazy=True)))

    # The client's side of a link dies silently: its next HELLO finds the
    # session busy until the old connection ends.
    o = SOps().op("Connect").exchange().send()
    o.op("Cut", bytes([0, 1, 0])).advance(200).op("Connect").exchange()
    o.advance(200).deliver(True, link=1).advance(400).op("Connect").exchange(4)
    seeds["busy_then_resume"] = o.build(session_config())

    # A small outbox filled before the first connection (drop oldest).
    o = SOps()
    for _ in range(6):
        o.send(filler=20)
    o.op("Connect").exchange(4).advance(100).exchange()
    seeds["overflow_drop_oldest"] = o.build(session_config(
        client=side_config(max_msgs=2, max_bytes=60, drop_oldest=True)))

    # Envelopes injected both ways: a DATA the peer never sent, an ACK for
    # nothing, a WELCOME out of place, a text message.
    o = SOps().op("Connect").exchange().send().exchange()
    o.op("InjectEnvelope", bytes([1, 0, 2, 0, 1]) + vec_u8(b"x"))
    o.op("InjectEnvelope", bytes([0, 0, 3, 0, 9]) + vec_u8(b""))
    o.op("InjectEnvelope", bytes([0, 0, 1, 0x41, 0]) + vec_u8(b""))
    o.op("InjectRaw", bytes([1, 0, 1]) + vec_u8(b"hello"))
    o.exchange(3).advance(500).op("Connect").exchange(3)
    seeds["inject_envelopes"] = o.build(session_config(inject=True))

    # Keepalive: pings, a lost pong, reconnect with backoff, a refused
    # connect; then a server that shuts its session down.
    o = SOps().op("Connect").exchange().advance(150).exchange().advance(150)
    o.op("Cut", bytes([0, 0, 0])).advance(2000).op("RefuseConnect").advance(500)
    o.op("Connect").exchange(4).send(server=True, ack=50).op("ServerShutdown", b"\x00")
    o.exchange(3).advance(100).exchange(3)
    seeds["keepalive_refused_server_shutdown"] = o.build(session_config(
        client=side_config(ping=90, pong=100), server=side_config(ping=200, pong=300)))

    # A first connection accepted without hookup.v1; bursts both ways; the
    # server application aborts its session.
    o = SOps().op("Connect").exchange(3).advance(100).op("Connect").exchange(3)
    o.op("Burst", bytes([0, 5]) + opt_u16(None)).op("Burst", bytes([1, 3]) + opt_u16(80))
    o.exchange(2).op("ServerAbort", b"\x00").exchange(2).advance(300).op("Connect")
    o.exchange(4)
    seeds["plain_accept_bursts_server_abort"] = o.build(session_config(plain_accepts=1))

    # Transports open as soon as asked; whole flushes; cuts, expiry and a
    # new session with messages both ways in flight.
    o = SOps().op("Flush").op("Burst", bytes([0, 3]) + opt_u16(200))
    o.op("Burst", bytes([1, 2]) + opt_u16(None)).deliver(True).op("Cut", bytes([0, 1, 1]))
    o.advance(50).op("Flush").op("Burst", bytes([1, 1]) + opt_u16(None)).deliver(False)
    o.op("Cut", bytes([0, 1, 1])).advance(1500).op("Flush").advance(100).op("Flush")
    seeds["auto_connect_flush_expiry"] = o.build(session_config(auto_connect=True, ttl=999))

    # The client shuts down with messages in flight; a timeout sweep.
    o = SOps().op("Connect").exchange().send().send(server=True).op("ClientShutdown")
    o.op("TimeoutNow").exchange(4)
    seeds["client_shutdown"] = o.build(session_config(reconnect=2))
    return seeds


def write(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    ctls = [0x00, 0x03, 0x15, 0x2E, 0x80, 0xFF]
    for i, (name, stream) in enumerate(sorted(FRAME_STREAMS.items())):
        ctl = ctls[i % len(ctls)]
        write("frame_decode", name, bytes([ctl, 7 + i]) + stream)
    for name, (ctl, req) in sorted(REQUESTS.items()):
        write("handshake_request", name, bytes([ctl]) + req)
    for name, (ctl, rest) in sorted(RESPONSES.items()):
        write("handshake_response", name, bytes([ctl]) + rest)
    for name, data in sorted(connection_ops_seeds().items()):
        write("connection_ops", name, data)
    for name, (server, client, value) in sorted(EXTENSIONS.items()):
        write("deflate_negotiation", name, server + client + value)
    for name, data in sorted(legacy_envelope_seeds().items()):
        write("legacy_envelope", name, data)
    for name, data in sorted(reliable_journal_seeds().items()):
        write("reliable_journal", name, data)
    for name, data in sorted(session_ops_seeds().items()):
        write("session_ops", name, data)


if __name__ == "__main__":
    main()
