#!/usr/bin/env python3
"""Backend proxies, measured side by side in one run (docs/benchmarks.md, "Backend proxies").

Starts hermod (the binary given) with a connect and an rpc proxy pointing at a trivial
backend in a child process (asyncio, HTTP/1.1 keep-alive, answers at once), and drives it with
raw WebSocket clients (asyncio, bounded concurrency):

- connect: N connections, each a WebSocket upgrade, a `connect`, its reply, a close; once
  with a JWT (no proxy call) and once without a token (through the connect proxy). Prints
  connects/s and the connect reply's latency (p50, p99), and the ratio.
- rpc: one connection, M sequential `rpc` calls answered by the backend, against the same
  number of `presence_stats` round trips on the same connection (answered by hermod alone):
  p50 and p99 of each, and what the proxy adds.

Bounded: the run is N + M round trips and stops; every process it starts is stopped.
Usage: bench/proxy_bench.py --hermod build/hermod [--connects 2000] [--rpcs 2000]
       [--concurrency 50] [--workers 2]
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import multiprocessing
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

SECRET = "bench-secret"


def jwt(claims):
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=")
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = b64(hmac.new(SECRET.encode(), head + b"." + body, hashlib.sha256).digest())
    return (head + b"." + body + b"." + sig).decode()


# --- the backend ---------------------------------------------------------------------------

async def backend_handler(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            m = re.search(rb"(?i)content-length:\s*(\d+)", head)
            body = await reader.readexactly(int(m.group(1)) if m else 0)
            path = head.split(b" ", 2)[1]
            request = json.loads(body or b"{}")
            if path == b"/connect":
                answer = {"result": {"user": "u" + request["client"][:8]}}
            else:
                answer = {"result": {"data": request.get("data")}}
            out = json.dumps(answer).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(out), out))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionResetError):
        pass
    finally:
        writer.close()


# --- a raw WebSocket client ----------------------------------------------------------------

class Ws:
    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(("GET /connection/websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n" % key).encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(head.decode(errors="replace"))
        return cls(reader, writer)

    def send(self, text):
        data = text.encode()
        mask = os.urandom(4)
        n = len(data)
        head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else
                                bytes([0x80 | 126]) + n.to_bytes(2, "big"))
        self.writer.write(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    async def recv(self):
        b0, b1 = await self.reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(await self.reader.readexactly(2), "big")
        elif n == 127:
            n = int.from_bytes(await self.reader.readexactly(8), "big")
        payload = await self.reader.readexactly(n)
        if b0 & 0x0F == 8:
            raise RuntimeError("closed: %r" % payload)
        return payload

    async def reply(self, id_):
        while True:
            for line in (await self.recv()).split(b"\n"):
                if line and json.loads(line).get("id") == id_:
                    return json.loads(line)

    def close(self):
        self.writer.close()


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else 0


async def connect_round(port, count, concurrency, token):
    latencies = []
    errors = 0
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i):
        nonlocal errors
        async with semaphore:
            ws = await Ws.open(port)
            started = time.perf_counter()
            request = {"token": jwt({"sub": "u%d" % i})} if token else {}
            ws.send(json.dumps({"id": 1, "connect": request}))
            reply = await ws.reply(1)
            latencies.append(time.perf_counter() - started)
            if "connect" not in reply:
                errors += 1
            ws.close()

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    elapsed = time.perf_counter() - started
    return {"connects_per_s": round(count / elapsed), "p50_ms": round(percentile(latencies, .5) * 1e3, 3),
            "p99_ms": round(percentile(latencies, .99) * 1e3, 3), "errors": errors}


async def rpc_round(port, count):
    ws = await Ws.open(port)
    ws.send(json.dumps({"id": 1, "connect": {"token": jwt({"sub": "rpc"})}}))
    await ws.reply(1)
    out = {}
    for name, command in [("presence_stats", {"presence_stats": {"channel": "p"}}),
                          ("rpc_proxy", {"rpc": {"method": "echo", "data": {"n": 1}}})]:
        latencies = []
        for i in range(count):
            id_ = 10 + i
            started = time.perf_counter()
            ws.send(json.dumps(dict(id=id_, **command)))
            reply = await ws.reply(id_)
            latencies.append(time.perf_counter() - started)
            if "error" in reply:
                raise RuntimeError("%s: %r" % (name, reply))
        out[name] = {"p50_ms": round(percentile(latencies, .5) * 1e3, 3),
                     "p99_ms": round(percentile(latencies, .99) * 1e3, 3)}
    ws.close()
    return out


def drain(stream):
    while stream.read(65536):
        pass


def start_hermod(binary, config, workers):
    directory = tempfile.mkdtemp(prefix="hermod-proxy-bench-")
    path = os.path.join(directory, "hermod.json")
    with open(path, "w") as f:
        json.dump(config, f)
    proc = subprocess.Popen([binary, "serve", "--bind", "127.0.0.1", "--port", "0", "--workers",
                             str(workers), "--config", path], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    log = b""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        log += line
        m = re.search(rb"listening on http://[^\s:]+:(\d+)", line)
        if m:
            # Keep reading (and dropping) the log: a full pipe would block hermod's loop
            # threads in write(2), so they would stop serving.
            threading.Thread(target=drain, args=(proc.stderr,), daemon=True).start()
            return proc, int(m.group(1))
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError("hermod did not start:\n" + log.decode(errors="replace"))


def run_backend(ports):
    """The backend in a process of its own: the clients' event loop does not serve it."""
    async def serve():
        server = await asyncio.start_server(backend_handler, "127.0.0.1", 0)
        ports.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()
    asyncio.run(serve())


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hermod", required=True)
    parser.add_argument("--connects", type=int, default=2000)
    parser.add_argument("--rpcs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    ports = multiprocessing.Queue()
    backend = multiprocessing.Process(target=run_backend, args=(ports,), daemon=True)
    backend.start()
    backend_port = ports.get(timeout=30)
    url = "http://127.0.0.1:%d" % backend_port
    config = {"token_hmac_secret_key": SECRET, "proxy_connect_endpoint": url + "/connect",
              "proxy_rpc_endpoint": url + "/rpc", "presence": True,
              "allow_presence_for_client": True,
              "client_connection_rate_limit": 0, "client_command_rate_limit": {
                  "total": {"rate": 0}, "rpc": {"rate": 0}, "presence": {"rate": 0}}}
    proc, port = start_hermod(args.hermod, config, args.workers)
    try:
        report = {"jwt": await connect_round(port, args.connects, args.concurrency, True),
                  "proxy": await connect_round(port, args.connects, args.concurrency, False)}
        report["connect_rate_ratio_proxy_to_jwt"] = round(
            report["proxy"]["connects_per_s"] / report["jwt"]["connects_per_s"], 2)
        report["rpc"] = await rpc_round(port, args.rpcs)
        report["rpc"]["p50_added_ms"] = round(report["rpc"]["rpc_proxy"]["p50_ms"] -
                                              report["rpc"]["presence_stats"]["p50_ms"], 3)
        report["rpc"]["p99_added_ms"] = round(report["rpc"]["rpc_proxy"]["p99_ms"] -
                                              report["rpc"]["presence_stats"]["p99_ms"], 3)
        print(json.dumps(report, indent=2))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        backend.terminate()
        backend.join()


if __name__ == "__main__":
    asyncio.run(main())
