#!/bin/sh
# Fan-out to 1,000 subscribers, JSON (-p hermod) and Protobuf (-p hermod-protobuf) against
# one hermod (one worker), alternated for two rounds. RATE: publications/s (0: full speed).
# Run from the repository root after a release build: RATE=100 bench/protobuf_fanout.sh
set -e
RATE=${RATE:-100}
./build/hermod serve --bind 127.0.0.1 --port 0 --workers 1 --config bench/peers/hermod.json 2>${TMPDIR:-/tmp}/pb-hermod.log &
PID=$!
for i in $(seq 50); do PORT=$(grep -o 'listening on http://[^ :]*:[0-9]*' ${TMPDIR:-/tmp}/pb-hermod.log | grep -o '[0-9]*$' || true); [ -n "$PORT" ] && break; sleep 0.1; done
for round in 1 2; do
  for p in hermod hermod-protobuf; do
    ./build/hermod-bench fanout -u ws://127.0.0.1:$PORT/connection/websocket -p $p -c 1000 -r $RATE -d 10 --no-progress --server-pid $PID --json ${TMPDIR:-/tmp}/pb-$p-$round.json | grep -E "delivered|p99|lost"
    echo "== $p round $round"
  done
done
kill $PID; wait $PID || true
