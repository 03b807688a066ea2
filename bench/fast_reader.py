#!/usr/bin/python3
"""The fast reader: how many publications a Python `websockets` subscriber that
reads as fast as it can gets, and whether it is told about the rest.

Starts hermod (the given binary, the server's defaults but for anonymous subscribers and the
API key), subscribes one `websockets` reader to a channel without history, and publishes
--count publications of 16 KiB through the server API from a separate process (no shared
GIL): --mode sequential (one request, one answer), pipelined (25 per write) or burst (every
request written at once, the answers read meanwhile). Prints what the reader received, how
it was told (unsubscribe push or close), the publishing and reading times, and the server's
drop counters. --no-deflate: the reader does not offer permessage-deflate (websockets offers
it by default, and these repetitive payloads then shrink a hundredfold); --big-queue: a 64 MiB
watermark and bound, to measure the reader's own rate without any shedding.

    /usr/bin/python3 bench/fast_reader.py build/hermod --mode burst --no-deflate

Debian's python3 (python3-websockets); 127.0.0.1 only.
"""

import argparse
import multiprocessing
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))

import hermod_harness as h  # noqa: E402
from hermod_harness import ResponseReader  # noqa: E402
from no_silent_loss_test import DEFAULTS, PAD, FastReader  # noqa: E402
from slow_consumer_test import Publisher, metric_sum  # noqa: E402
import json  # noqa: E402


def publish(port, mode, count):
    p = Publisher(port)
    if mode == "burst":
        out = b"".join(
            ("POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: apikey k\r\n"
             "Content-Length: %d\r\n\r\n" % len(raw)).encode() + raw
            for raw in (json.dumps({"channel": "ch", "data": {"n": n, "pad": PAD}}).encode()
                        for n in range(count)))

        def answers():
            reader = ResponseReader(p.sock)
            for _ in range(count):
                reader.read(timeout=60)

        t = threading.Thread(target=answers)
        t.start()
        p.sock.sendall(out)
        t.join()
        return
    batch = 25 if mode == "pipelined" else 1
    for k in range(count // batch):
        p.pipeline("publish", [{"channel": "ch", "data": {"n": k * batch + i, "pad": PAD}}
                               for i in range(batch)])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("hermod")
    ap.add_argument("--mode", choices=("sequential", "pipelined", "burst"), default="burst")
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--no-deflate", action="store_true")
    ap.add_argument("--big-queue", action="store_true")
    args = ap.parse_args()
    config = dict(DEFAULTS)
    if args.big_queue:
        config["websocket"] = {"max_write_buffer_bytes": 64 << 20}
        config["send_queue"] = {"drop_low_bytes": 64 << 20, "drop_normal_bytes": 64 << 20}
    server = h.Hermod(args.hermod, config, workers=2, echo=False).start()
    try:
        port = server.port
        options = {"compression": None} if args.no_deflate else {}
        r = FastReader(port, "ch", args.count, **options)
        r.start()
        r.ready.wait(10)
        t0 = time.monotonic()
        proc = multiprocessing.Process(target=publish, args=(port, args.mode, args.count))
        proc.start()
        proc.join(300)
        t1 = time.monotonic()
        # A reader neither complete nor told 20 s after the last answer lost the rest silently.
        r.join(20)
        t2 = time.monotonic()
        drops = {n: metric_sum(port, "hermod_send_queue_dropped_total", 'reason="%s"' % n)
                 for n in ("shed", "told", "cut")}
        print("%s deflate=%s big_queue=%s: received %d/%d in order=%s told=%r; published in "
              "%.2f s, read in %.2f s%s; pushes %r; slow-consumer disconnects %d" % (
                  args.mode, not args.no_deflate, args.big_queue, len(r.seqs), args.count,
                  r.seqs == list(range(len(r.seqs))), r.told, t1 - t0, t2 - t0,
                  " (still waiting: lost silently)" if r.is_alive() else "", drops,
                  metric_sum(port, "hermod_slow_consumer_disconnects_total")))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
