"""permessage-deflate interop between hookup and Python's `websockets`.

    deflate_peer.py client URL          websockets clients against `hookup serve --deflate`
    deflate_peer.py server PORT FILE    a websockets echo server for `hookup connect --deflate`;
                                        writes a summary of what it saw to FILE

The client mode runs several offers (default, window bits, no context
takeover both ways) and checks every echo, that the extension was agreed
with the expected parameters and that the server's large messages arrived
compressed (RSV1) while small ones did not. Exits non-zero on any mismatch.
"""

import asyncio
import json
import random
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.extensions import permessage_deflate as pmd

# Count frames by their RSV1 bit, as websockets' own extension decodes them.
SEEN = {"compressed": 0, "plain": 0}
_decode = pmd.PerMessageDeflate.decode


def _counting_decode(self, frame, *, max_size=None):
    if frame.opcode.value in (1, 2):
        SEEN["compressed" if frame.rsv1 else "plain"] += 1
    return _decode(self, frame, max_size=max_size)


pmd.PerMessageDeflate.decode = _counting_decode


def payloads():
    rnd = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta", "price", "quantity", "user", "id"]
    record = lambda i: {"id": i, "user": rnd.choice(words), "qty": rnd.randrange(1000),
                        "tags": rnd.sample(words, 3), "note": "ünïcödé ✓"}
    big = json.dumps([record(i) for i in range(400)])
    out = [
        "hi",                                   # below the threshold: uncompressed
        big,                                    # ~30 KiB of JSON
        big,                                    # again: context takeover shrinks it
        big.encode(),                           # binary
        json.dumps([record(i) for i in range(12000)]),  # ~1 MiB
        bytes(rnd.randrange(256) for _ in range(5000)),  # incompressible
        "",
        "x" * 128,
    ]
    return out


OFFERS = [
    ("default", dict(), {}),
    ("server_max_window_bits=10", dict(server_max_window_bits=10), {"server_max_window_bits": "10"}),
    ("client_max_window_bits=9", dict(client_max_window_bits=9), {"client_max_window_bits": "9"}),
    ("server_no_context_takeover", dict(server_no_context_takeover=True),
     {"server_no_context_takeover": None}),
    ("client_no_context_takeover", dict(client_no_context_takeover=True), {}),
    ("everything", dict(server_no_context_takeover=True, client_no_context_takeover=True,
                        server_max_window_bits=9, client_max_window_bits=11),
     {"server_no_context_takeover": None, "server_max_window_bits": "9",
      "client_max_window_bits": "11"}),
]


def params_of(header):
    name, *params = [p.strip() for p in header.split(";")]
    assert name == "permessage-deflate", header
    out = {}
    for p in params:
        k, _, v = p.partition("=")
        out[k] = v or None
    return out


async def run_client(url):
    failures = 0
    for name, kwargs, expect_params in OFFERS:
        SEEN.update(compressed=0, plain=0)
        ext = pmd.ClientPerMessageDeflateFactory(**kwargs)
        async with connect(url, extensions=[ext], compression=None, max_size=None) as ws:
            header = ws.response.headers.get("Sec-WebSocket-Extensions")
            params = params_of(header)
            ok = params == expect_params
            for p in payloads():
                await ws.send(p)
                echo = await ws.recv()
                ok &= echo == p
            # "hi" and "" below the 128-byte threshold; the other six compressed.
            ok &= SEEN == {"compressed": 6, "plain": 2}
        print(f"{'ok  ' if ok else 'FAIL'} client offer {name}: response {header!r}, frames {SEEN}")
        failures += not ok
    # Without the extension nothing is compressed.
    SEEN.update(compressed=0, plain=0)
    async with connect(url, compression=None) as ws:
        ok = ws.response.headers.get("Sec-WebSocket-Extensions") is None
        await ws.send("x" * 1000)
        ok &= await ws.recv() == "x" * 1000
    print(f"{'ok  ' if ok else 'FAIL'} client without deflate")
    failures += not ok
    return failures


async def run_server(port, summary):
    seen = {"messages": 0, "headers": []}
    done = asyncio.get_running_loop().create_future()

    async def echo(ws):
        seen["headers"].append(ws.request.headers.get("Sec-WebSocket-Extensions"))
        seen["response"] = ws.response.headers.get("Sec-WebSocket-Extensions")
        async for m in ws:
            seen["messages"] += 1
            await ws.send(m)
        if not done.done():
            done.set_result(None)

    ext = pmd.ServerPerMessageDeflateFactory(
        server_max_window_bits=11, client_max_window_bits=10, client_no_context_takeover=True
    )
    async with serve(echo, "127.0.0.1", port, extensions=[ext], compression=None, max_size=None):
        print("listening", flush=True)
        await asyncio.wait_for(done, 60)
    seen["frames"] = dict(SEEN)
    with open(summary, "w") as f:
        json.dump(seen, f)


def main():
    mode = sys.argv[1]
    if mode == "client":
        sys.exit(1 if asyncio.run(run_client(sys.argv[2])) else 0)
    elif mode == "server":
        asyncio.run(run_server(int(sys.argv[2]), sys.argv[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
