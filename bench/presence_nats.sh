#!/bin/bash
# Presence reads on engine nats, two builds side by side: BM_NatsPresenceReads (bench/micro)
# of hermod-micro binaries A and B, in interleaved rounds against one nats-server -js this
# script starts on a free loopback port (a fresh store directory; each run its own bucket).
# One line per run, then the medians and B/A.
# Usage: bench/presence_nats.sh MICRO_A MICRO_B [ROUNDS]
set -u
A=$1; B=$2; ROUNDS=${3:-5}
DIR=$(mktemp -d /tmp/hermod-presence-nats-XXXXXX)
NP=
cleanup() { [ -n "$NP" ] && kill "$NP" 2> /dev/null && wait "$NP" 2> /dev/null; rm -rf "$DIR"; }
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
nats-server -js -a 127.0.0.1 -p "$PORT" -sd "$DIR/js" > "$DIR/nats.log" 2>&1 &
NP=$!
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/"$PORT") 2> /dev/null && break; sleep 0.1; done
export HERMOD_NATS_URL=nats://127.0.0.1:$PORT
for round in $(seq "$ROUNDS"); do
  for side in A B; do
    bin=$A; [ "$side" = B ] && bin=$B
    "$bin" --benchmark_filter=NatsPresenceReads --benchmark_min_time=2 \
      --benchmark_out="$DIR/r.json" --benchmark_out_format=json > /dev/null 2>&1
    python3 - "$DIR/r.json" "$round" "$side" <<'PY'
import json, sys
for b in json.load(open(sys.argv[1]))["benchmarks"]:
    print("round=%s side=%s %s reads/s=%.0f" % (sys.argv[2], sys.argv[3], b["name"],
                                                b.get("items_per_second", 0)))
PY
  done
done | tee "$DIR/lines"
python3 - "$DIR/lines" <<'PY'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    side, name, rate = re.search(r"side=(\S+) (\S+) reads/s=(\d+)", line).groups()
    runs.setdefault(name, {}).setdefault(side, []).append(float(rate))
for name, sides in runs.items():
    a, b = statistics.median(sides["A"]), statistics.median(sides["B"])
    print("median %s: A %.0f reads/s, B %.0f reads/s, B/A %.2f (%d rounds)"
          % (name, a, b, b / a if a else 0, len(sides["A"])))
PY
