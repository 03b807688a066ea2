"""hermod refuses a port something already listens on.

hermod's listeners set SO_REUSEPORT (one per loop, the kernel spreads accepts over them),
which also lets a second hermod of the same user join the first's listening group: the
kernel then splits connections between two servers with different configs. hermod probes
the port without SO_REUSEPORT before binding and stops, naming the port, when it is taken:
by another hermod, by a listener that set SO_REUSEPORT, or by a plain listener. A port left
in TIME_WAIT by a stopped hermod is free: a restart on the same port must still work.
"""

import socket

import hermod_harness as h


class PortConflictTest(h.HermodTestCase):
    def refused_on(self, port):
        """Starts hermod on port; asserts it exits non-zero with a message naming the port."""
        second = h.Hermod(h.HERMOD, port=port, workers=2)
        self.addCleanup(second.cleanup)
        try:
            second.start()
        except AssertionError as e:
            self.assertIn("before listening", str(e))
        else:
            self.fail("a second server listens on busy port %d:\n%s"
                      % (port, second.stderr_text()))
        self.assertNotEqual(second.proc.returncode, 0)
        text = second.stderr_text()
        self.assertIn("port %d is already in use" % port, text)
        return second

    def test_second_hermod_on_the_same_port_refuses_to_start(self):
        first = self.start_server(workers=2)
        self.refused_on(first.port)
        # The first one still answers every request (nothing joined its listening group).
        for _ in range(8):
            r = h.http_exchange(first.port, b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(r.status, 200)

    def test_a_port_held_by_another_listener_is_refused(self):
        for reuseport in (False, True):
            with self.subTest(reuseport=reuseport), socket.socket() as listener:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if reuseport:  # as nginx, envoy or another hermod with SO_REUSEPORT do
                    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                listener.bind(("127.0.0.1", 0))
                listener.listen(16)
                self.refused_on(listener.getsockname()[1])

    def test_a_restart_on_the_port_of_a_stopped_server_starts(self):
        first = self.start_server()
        port = first.port
        # The server closes first ("Connection: close"), so its side of the connection stays
        # in TIME_WAIT on the port after it exits.
        r = h.http_exchange(port, b"GET /health/live HTTP/1.1\r\nHost: x\r\n"
                                  b"Connection: close\r\n\r\n")
        self.assertEqual(r.status, 200)
        first.stop()
        second = self.start_server(port=port)
        self.assertEqual(second.port, port)


if __name__ == "__main__":
    h.main()
