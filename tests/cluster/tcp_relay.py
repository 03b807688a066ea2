"""A TCP relay for fault tests: accepts on 127.0.0.1:LISTEN and pipes each connection to
127.0.0.1:TARGET, both ways, until either side closes. Prints "listening <port>" once it
accepts (LISTEN 0: a free port). Stopped (SIGSTOP) it forwards nothing while the kernel
still takes what the client writes; killed (-9) its connections die with what they held,
as a partition or a dying middlebox would do to one node's link.

Run: python3 tcp_relay.py LISTEN TARGET
"""

import selectors
import socket
import sys


def main():
    listen_port, target_port = int(sys.argv[1]), int(sys.argv[2])
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listen_port))
    server.listen(16)
    server.setblocking(False)
    print("listening %d" % server.getsockname()[1], flush=True)
    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ)
    peers = {}
    while True:
        for key, _ in selector.select():
            sock = key.fileobj
            if sock is server:
                client, _ = server.accept()
                upstream = socket.create_connection(("127.0.0.1", target_port))
                for s in (client, upstream):
                    s.setblocking(True)
                    selector.register(s, selectors.EVENT_READ)
                peers[client], peers[upstream] = upstream, client
                continue
            if sock not in peers:
                continue
            other = peers[sock]
            try:
                data = sock.recv(65536)
                if data:
                    other.sendall(data)
                    continue
            except OSError:
                pass
            for s in (sock, other):
                selector.unregister(s)
                s.close()
                del peers[s]


if __name__ == "__main__":
    main()
