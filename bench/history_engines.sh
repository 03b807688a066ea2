#!/bin/bash
# Interleaved rounds of two hermod binaries (A, B), one server at a time, each on a fresh
# SQLite file: publications with history (4 publishers of 1 KiB at full speed into one channel
# with history_size 1000 and history_ttl 300 s, one subscriber, one loop) on the memory and the
# sqlite engine, then the memory engine's fan-out (500 subscribers, 200 publications/s of
# 128 B) and echo (50 connections, 64 B, closed loop). One line per run; take medians.
# Usage: bench/history_engines.sh BINARY_A BINARY_B [HERMOD_BENCH] [ROUNDS]
set -u
A=$1; B=$2; BENCH=${3:-build/hermod-bench}; ROUNDS=${4:-3}
DIR=$(mktemp -d /tmp/hermod-history-engines-XXXXXX)
trap 'rm -rf "$DIR"' EXIT
python3 - "$DIR" "$(dirname "$0")/peers/hermod.json" <<'PY'
import json, sys
d, peer = sys.argv[1], sys.argv[2]
base = json.load(open(peer))
base.update({"history_size": 1000, "history_ttl": "300s", "api_key": "k"})
json.dump(base, open(d + "/memory.json", "w"))
base.update({"engine": "sqlite", "sqlite": {"path": d + "/bench.db"}})
json.dump(base, open(d + "/sqlite.json", "w"))
PY
summary() { python3 -c "import json; print(round(json.load(open('$DIR/r.json'))['summary']['$1']))"; }
serve() {
  rm -f "$DIR"/bench.db*
  "$1" serve --bind 127.0.0.1 --port "$3" --workers 1 --echo --config "$2" > "$DIR/server.log" 2>&1 &
  SP=$!
  for _ in $(seq 100); do curl -s "localhost:$3/health" > /dev/null && break; sleep 0.1; done
}
stop() { kill "$SP"; wait "$SP" 2> /dev/null; }
PORT=$((20000 + RANDOM % 20000))
for round in $(seq "$ROUNDS"); do
  for bin in A B; do
    BIN=$A; [ $bin = B ] && BIN=$B
    for engine in memory sqlite; do
      PORT=$((PORT + 1)); serve "$BIN" "$DIR/$engine.json" $PORT
      "$BENCH" fanout -u ws://127.0.0.1:$PORT/connection/websocket -p hermod -c 1 --publishers 4 \
          -s 1024 -r 0 -d 6 --no-progress --json "$DIR/r.json" -q
      TOP=$(curl -s --max-time 120 -H 'X-API-Key: k' -d '{"channel":"hb0","limit":0}' \
          localhost:$PORT/api/history | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["offset"])')
      echo "round=$round bin=$bin history engine=$engine sent/s=$(summary sent_per_s) stored=$TOP"
      stop
    done
    PORT=$((PORT + 1)); serve "$BIN" "$DIR/memory.json" $PORT
    "$BENCH" fanout -u ws://127.0.0.1:$PORT/connection/websocket -p hermod -c 500 --publishers 1 \
        -s 128 -r 200 -d 6 --no-progress --json "$DIR/r.json" -q
    echo "round=$round bin=$bin fanout500 engine=memory deliveries/s=$(summary deliveries_per_s)"
    stop
    PORT=$((PORT + 1)); serve "$BIN" "$DIR/memory.json" $PORT
    "$BENCH" echo -u ws://127.0.0.1:$PORT/connection/echo -c 50 -s 64 -r 0 -d 6 --no-progress \
        --json "$DIR/r.json" -q
    echo "round=$round bin=$bin echo50 engine=memory echoes/s=$(summary deliveries_per_s)"
    stop
  done
done
