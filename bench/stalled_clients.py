#!/usr/bin/env python3
"""Subscribers that stop reading: the slow consumers of a fan-out run.

Opens N WebSocket connections to a hermod (Centrifugo JSON protocol) with a tiny receive
buffer (SO_RCVBUF, set before connect so the TCP window stays small), connects, subscribes
each to CHANNEL, prints "ready N" and then never reads again, until SIGTERM/SIGINT or
--seconds. At exit it reports how each connection ended from the server's side: a Close
frame's code (3008: cut as a slow consumer) if one is in what the kernel buffered, else
"closed" or "reset" (cut, its Close lost behind the backlog), or "open". Beside `hermod-bench fanout` it shows what slow consumers cost the others
(docs/benchmarks.md):

    bench/stalled_clients.py --url ws://127.0.0.1:8000/connection/websocket -n 4 hb0 &
    build/hermod-bench fanout -u ws://127.0.0.1:8000/connection/websocket -p hermod ...

Standard library only; 127.0.0.1 or any host given.
"""

import argparse
import base64
import json
import os
import signal
import socket
import struct
import sys
import time
import urllib.parse


def frame(payload):
    """A masked text frame (clients must mask, RFC 6455 §5.3)."""
    data = payload.encode()
    mask = os.urandom(4)
    n = len(data)
    head = bytes([0x81])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def read_until(sock, marker, limit=1 << 16):
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during setup")
        data += chunk
        if len(data) > limit:
            raise ConnectionError("no %r in the first %d bytes" % (marker, limit))
    return data


def open_stalled(host, port, path, channel, rcvbuf):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n" % (path, host, port, key)).encode())
    read_until(sock, b"\r\n\r\n")
    sock.sendall(frame(json.dumps({"id": 1, "connect": {"name": "stalled"}})))
    sock.sendall(frame(json.dumps({"id": 2, "subscribe": {"channel": channel}})))
    read_until(sock, b'"id":2')
    return sock


def close_code(sock):
    """Reads what the kernel holds (non-blocking) and looks for a server Close frame."""
    sock.setblocking(False)
    data = b""
    ended = "open"
    try:
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                ended = "closed"
                break
            data += chunk
    except BlockingIOError:
        pass
    except ConnectionResetError:
        ended = "reset"
    at = data.rfind(b"\x88")
    while at >= 0:
        if at + 4 <= len(data) and data[at + 1] < 126 and data[at + 1] >= 2:
            return str(struct.unpack("!H", data[at + 2:at + 4])[0])
        at = data.rfind(b"\x88", 0, at)
    return ended


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("channel")
    parser.add_argument("--url", default="ws://127.0.0.1:8000/connection/websocket")
    parser.add_argument("-n", type=int, default=1, help="stalled connections")
    parser.add_argument("--rcvbuf", type=int, default=4096)
    parser.add_argument("--seconds", type=float, default=3600)
    args = parser.parse_args()
    url = urllib.parse.urlparse(args.url)
    socks = [open_stalled(url.hostname, url.port or 80, url.path or "/", args.channel,
                          args.rcvbuf) for _ in range(args.n)]
    print("ready %d" % len(socks), flush=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    deadline = time.monotonic() + args.seconds
    while not stop and time.monotonic() < deadline:
        time.sleep(0.2)  # idle on purpose: these clients never read
    codes = [close_code(s) for s in socks]
    print("ended: " + " ".join(codes), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
