"""TLS on hermod's one port: https /health, wss echo with Python websockets, no plain text.

The certificate is self-signed and made at test time with the openssl CLI.
"""

import asyncio
import json
import os
import ssl
import subprocess
import tempfile

import websockets

import hermod_harness as h


def make_certificate(directory):
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
    return cert, key


class TlsTest(h.HermodTestCase):
    def setUp(self):
        directory = tempfile.TemporaryDirectory(prefix="hermod-tls-")
        self.addCleanup(directory.cleanup)
        self.cert, key = make_certificate(directory.name)
        self.server = self.start_server({"tls": {"cert_file": self.cert, "key_file": key}})
        self.assertEqual(self.server.scheme, "https")
        self.context = ssl.create_default_context(cafile=self.cert)

    def test_https_health(self):
        with h.connect(self.server.port) as raw:
            with self.context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             b"Connection: close\r\n\r\n")
                data = b""
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head[:100])
        self.assertEqual(json.loads(body).get("status"), "ok")

    def test_https_with_unverified_context(self):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with h.connect(self.server.port) as raw:
            with context.wrap_socket(raw) as sock:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n")
                self.assertTrue(sock.recv(65536).startswith(b"HTTP/1.1 200"))

    def test_wss_echo_plain_and_deflate(self):
        uri = "wss://127.0.0.1:%d/connection/echo" % self.server.port

        async def run():
            for compression in (None, "deflate"):
                async with websockets.connect(uri, ssl=self.context, compression=compression,
                                              max_size=1 << 20) as ws:
                    for message in ("hello over tls", b"\x00\x01" * 40000, "x" * 70000):
                        await ws.send(message)
                        self.assertEqual(await asyncio.wait_for(ws.recv(), 20), message)
                    self.assertEqual(bool(ws.extensions), compression is not None)

        asyncio.run(asyncio.wait_for(run(), 60))

    def test_plain_http_is_not_served_on_the_tls_port(self):
        with h.connect(self.server.port) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            data = h.recv_until_closed(sock, timeout=10)
        self.assertFalse(data.startswith(b"HTTP/1.1 200"), data[:100])


if __name__ == "__main__":
    h.main()
