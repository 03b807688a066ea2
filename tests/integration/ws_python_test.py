"""hermod against the Python `websockets` client (Debian's 10.4, asyncio API).

The echo bodies are shared across compression variants: the same sizes go through a plain
connection and through permessage-deflate with and without context takeover.
"""

import asyncio
import os
import random

import websockets

import hermod_harness as h

MAX_MESSAGE = 1 << 20
SIZES = [0, 1, 125, 126, 65535, 65536, MAX_MESSAGE - 1]
TIMEOUT_S = 20
SEED = int(os.environ.get("WS_PYTHON_TEST_SEED", "6455"))


def text_of(size, rng):
    """A str of exactly `size` UTF-8 bytes with 1-, 2-, 3- and 4-byte characters."""
    alphabet = ["a", "b", " ", "\u00e9", "\u00df", "\u20ac", "\u2713", "\U0001F600"]
    out, used = [], 0
    while used < size:
        c = rng.choice(alphabet)
        n = len(c.encode())
        if used + n > size:
            c, n = "z", 1
        out.append(c)
        used += n
    return "".join(out)


def binary_of(size, rng):
    # Half random, half repetitive: exercises both stored and compressed deflate blocks.
    half = size // 2
    return rng.randbytes(half) + (b"hermod" * (size // 6 + 1))[: size - half]


class WebSocketPythonTest(h.HermodTestCase):
    def run_async(self, coroutine):
        return asyncio.run(asyncio.wait_for(coroutine, TIMEOUT_S * 3))

    def uri(self, server, path="/connection/echo"):
        return "ws://127.0.0.1:%d%s" % (server.port, path)

    def echo_all_sizes(self, compression, config_compression=None):
        print("seed %d" % SEED)
        rng = random.Random(SEED)
        config = {"websocket": {"max_message_bytes": MAX_MESSAGE}}
        if config_compression is not None:
            config["websocket"]["compression"] = config_compression
        server = self.start_server(config)

        async def run():
            async with websockets.connect(self.uri(server), compression=compression,
                                          max_size=2 * MAX_MESSAGE) as ws:
                offered = ws.response_headers.get("Sec-WebSocket-Extensions") or ""
                if compression is None:
                    self.assertEqual(offered, "")
                    self.assertEqual(ws.extensions, [])
                else:
                    self.assertIn("permessage-deflate", offered)
                    self.assertEqual([e.name for e in ws.extensions], ["permessage-deflate"])
                for size in SIZES:
                    for message in (text_of(size, rng), binary_of(size, rng)):
                        await ws.send(message)
                        echoed = await asyncio.wait_for(ws.recv(), TIMEOUT_S)
                        self.assertEqual(type(echoed), type(message), "size %d" % size)
                        self.assertTrue(echoed == message, "size %d: echo differs" % size)
                return offered

        return self.run_async(run())

    def test_echoes_text_and_binary_of_every_size_without_compression(self):
        self.echo_all_sizes(None)

    def test_echoes_text_and_binary_of_every_size_with_permessage_deflate(self):
        self.echo_all_sizes("deflate")

    def test_echoes_with_deflate_context_takeover(self):
        offered = self.echo_all_sizes("deflate", {
            "server_no_context_takeover": False, "client_no_context_takeover": False})
        self.assertNotIn("server_no_context_takeover", offered)

    def test_echoes_with_deflate_no_context_takeover_and_small_window(self):
        offered = self.echo_all_sizes("deflate", {
            "server_no_context_takeover": True, "client_no_context_takeover": True,
            "server_max_window_bits": 10})
        self.assertIn("server_no_context_takeover", offered)
        self.assertIn("server_max_window_bits=10", offered)

    def test_compression_disabled_in_config_is_not_negotiated(self):
        server = self.start_server({"websocket": {"compression": {"enabled": False}}})

        async def run():
            async with websockets.connect(self.uri(server), compression="deflate") as ws:
                self.assertEqual(ws.extensions, [])
                await ws.send("x" * 1000)
                self.assertEqual(await ws.recv(), "x" * 1000)

        self.run_async(run())

    def test_selects_a_configured_subprotocol(self):
        server = self.start_server({"websocket": {"subprotocols": ["hermod.v1", "chat"]}})

        async def run():
            async with websockets.connect(self.uri(server),
                                          subprotocols=["other", "chat"]) as ws:
                self.assertEqual(ws.subprotocol, "chat")
            async with websockets.connect(self.uri(server), subprotocols=["other"]) as ws:
                self.assertIsNone(ws.subprotocol)

        self.run_async(run())

    def test_close_handshake_answers_with_the_same_code(self):
        server = self.start_server()

        async def run():
            ws = await websockets.connect(self.uri(server))
            await ws.send("hello")
            self.assertEqual(await ws.recv(), "hello")
            await ws.close(1000, "bye")
            self.assertEqual(ws.close_code, 1000)
            # An application code too comes back unchanged (RFC 6455 §5.5.1).
            ws = await websockets.connect(self.uri(server))
            await ws.close(4001, "custom")
            self.assertEqual(ws.close_code, 4001)

        self.run_async(run())

    def test_plain_websocket_endpoint_upgrades_and_stays_silent(self):
        server = self.start_server()

        async def run():
            async with websockets.connect(self.uri(server, "/connection/websocket")) as ws:
                pong = await ws.ping(b"are you there")
                await asyncio.wait_for(pong, TIMEOUT_S)
                with self.assertRaises(asyncio.TimeoutError):
                    await asyncio.wait_for(ws.recv(), 0.3)

        self.run_async(run())

    def test_echo_endpoint_is_404_without_echo(self):
        server = self.start_server(echo=False)

        async def run():
            with self.assertRaises(websockets.exceptions.InvalidStatusCode) as cm:
                await websockets.connect(self.uri(server))
            self.assertEqual(cm.exception.status_code, 404)

        self.run_async(run())

    def test_sigterm_closes_open_connections_with_1001(self):
        server = self.start_server()

        async def run():
            clients = [await websockets.connect(self.uri(server)) for _ in range(3)]
            for ws in clients:
                await ws.send("before shutdown")
                self.assertEqual(await ws.recv(), "before shutdown")
            server.signal_stop()
            for ws in clients:
                with self.assertRaises(websockets.exceptions.ConnectionClosed) as cm:
                    await asyncio.wait_for(ws.recv(), TIMEOUT_S)
                self.assertIsNotNone(cm.exception.rcvd, "no Close frame from the server")
                self.assertEqual(cm.exception.rcvd.code, 1001)
                await ws.wait_closed()

        self.run_async(run())
        self.assertEqual(server.wait_exit(), 0, server.stderr_text())


class OutgoingFragmentationTest(h.HermodTestCase):
    """websocket.fragment_bytes splits what the server sends (RFC 6455 §5.4)."""

    def test_large_echo_leaves_as_continuation_frames_of_the_configured_size(self):
        server = self.start_server({"websocket": {"fragment_bytes": 1000,
                                                  "compression": {"enabled": False}}})
        ws = h.ws_open(server.port)
        payload = bytes(range(256)) * 10  # 2,560 bytes: 1000 + 1000 + 560
        ws.send_frame(h.OP_BINARY, payload)
        frames = [ws.read_frame() for _ in range(3)]
        self.assertEqual([f.opcode for f in frames], [h.OP_BINARY, 0, 0])
        self.assertEqual([f.fin for f in frames], [False, False, True])
        self.assertEqual([len(f.payload) for f in frames], [1000, 1000, 560])
        self.assertEqual(b"".join(f.payload for f in frames), payload)
        ws.close()


if __name__ == "__main__":
    h.main()
