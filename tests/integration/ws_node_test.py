"""hermod against Node's `ws` (node/ws_client.mjs): deflate on and off, fragments, ping."""

import node_runner
import hermod_harness as h


class WebSocketNodeTest(h.HermodTestCase):
    def test_node_ws_client_echoes_with_and_without_deflate(self):
        server = self.start_server({"websocket": {"max_message_bytes": 4 << 20}})
        out = node_runner.run_node_script(self, "ws_client.mjs", server)
        self.assertIn("ok: deflate", out)
        self.assertIn("ok: plain", out)


if __name__ == "__main__":
    h.main()
