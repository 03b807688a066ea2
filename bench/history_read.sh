#!/bin/bash
# History read latency per engine: `hermod-bench history` against one hermod binary on the
# memory engine, the sqlite engine (a fresh file each run) and the nats engine (a nats-server
# -js the run starts, a fresh store each run), and on nats-server -js alone (`jetstream`: a
# stream with max_msgs_per_subject FILL and allow_direct, each read L direct gets by sequence
# written at once over its WebSocket listener: the floor for reading from JetStream), in
# interleaved rounds, one server at a time on free loopback ports. Each run fills CHANNELS channels with FILL publications of 1 KiB
# (history_size FILL, history_ttl 300 s), then reads with `since` a random offset of the
# channel and limit LIMIT, every answer checked (count, offsets, stamps, epoch, top offset):
#   client      the client `history` command over WebSocket, 8 readers at RATE reads/s in
#               all, for DURATION s: latency at a bounded rate;
#   client-max  the same in a closed loop (8 readers, one read in flight each), READS reads
#               or DURATION s, whichever ends first: reads/s;
#   api         /api/history over HTTP keep-alive, 8 readers at RATE reads/s (not jetstream).
# The CPU per read is the server's: hermod's (with engine nats, not nats-server's), or
# nats-server's for jetstream.
# One line per run, then per engine and mode the medians and their ratio to the memory
# engine's medians of the same run. Stops everything it started.
# Usage: bench/history_read.sh [HERMOD] [HERMOD_BENCH] [ROUNDS]
#        env: CHANNELS (100) FILL (200) LIMIT (10) RATE (1000) DURATION (8) READS (20000)
#             ENGINES ("memory sqlite nats jetstream")
set -u
HERMOD=${1:-build/hermod}; BENCH=${2:-build/hermod-bench}; ROUNDS=${3:-3}
CHANNELS=${CHANNELS:-100}; FILL=${FILL:-200}; LIMIT=${LIMIT:-10}; RATE=${RATE:-1000}
DURATION=${DURATION:-8}; READS=${READS:-20000}
DIR=$(mktemp -d /tmp/hermod-history-read-XXXXXX)
SP=; NP=
cleanup() {
  [ -n "$SP" ] && kill "$SP" 2> /dev/null && wait "$SP" 2> /dev/null
  [ -n "$NP" ] && kill "$NP" 2> /dev/null && wait "$NP" 2> /dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/"$1") 2> /dev/null && return; sleep 0.1; done; }
python3 - "$DIR" "$FILL" <<'PY'
import json, sys
d, fill = sys.argv[1], int(sys.argv[2])
base = {"api_key": "k", "allow_anonymous_connect_without_token": True,
        "allow_history_for_client": True, "history_size": fill, "history_ttl": "300s",
        "client_command_rate_limit": {"total": {"rate": 0}, "history": {"rate": 0}}}
json.dump(base, open(d + "/memory.json", "w"))
json.dump(dict(base, engine="sqlite", sqlite={"path": d + "/bench.db"}), open(d + "/sqlite.json", "w"))
json.dump(dict(base, engine="nats", nats={"url": "nats://127.0.0.1:NATS_PORT"}), open(d + "/nats.json", "w"))
PY
figures() {
  python3 -c "import json; s=json.load(open('$DIR/r.json'))['summary']; \
print('reads/s=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f reads=%d wrong=%d failed=%d server_us_per_read=%.1f' % \
(s['reads_per_s'], s['latency_p50_ms'], s['latency_p90_ms'], s['latency_p99_ms'], s['latency_max_ms'], \
s['reads'], s['wrong'], s['failed'], s['server_cpu_s'] * 1e6 / max(1, s['reads'])))"
}
# One run of nats-server -js alone: mode, hermod-bench's arguments past the common ones.
jetstream_run() {
  rm -rf "$DIR/js"
  local nport wport; nport=$(freeport); wport=$(freeport)
  printf 'listen: 127.0.0.1:%s\njetstream { store_dir: "%s" }\nwebsocket { host: 127.0.0.1, port: %s, no_tls: true }\n' \
      "$nport" "$DIR/js" "$wport" > "$DIR/nats.conf"
  nats-server -c "$DIR/nats.conf" > "$DIR/nats.log" 2>&1 &
  NP=$!; wait_port "$wport"
  rm -f "$DIR/r.json"
  shift
  "$BENCH" history -u ws://127.0.0.1:"$wport"/ -p nats --channels "$CHANNELS" --fill "$FILL" -s 1024 \
      --limit "$LIMIT" -c 8 --server-pid "$NP" --no-progress -q --json "$DIR/r.json" "$@" \
      || echo "hermod-bench exited $? (jetstream $mode)" >&2
  kill "$NP"; wait "$NP" 2> /dev/null; NP=
}
# One run: engine, mode, hermod-bench's arguments past the common ones.
run() {
  if [ "$1" = jetstream ]; then
    shift
    jetstream_run "$@"
    return
  fi
  rm -f "$DIR"/bench.db*
  local config="$DIR/$1.json"
  if [ "$1" = nats ]; then
    rm -rf "$DIR/js"
    local nport; nport=$(freeport)
    nats-server -js -a 127.0.0.1 -p "$nport" -sd "$DIR/js" > "$DIR/nats.log" 2>&1 &
    NP=$!; wait_port "$nport"
    sed "s/NATS_PORT/$nport/" "$DIR/nats.json" > "$DIR/nats-run.json"
    config="$DIR/nats-run.json"
  fi
  local port; port=$(freeport)
  "$HERMOD" serve --bind 127.0.0.1 --port "$port" --config "$config" > "$DIR/server.log" 2>&1 &
  SP=$!; wait_port "$port"
  rm -f "$DIR/r.json"
  shift 2
  "$BENCH" history -u ws://127.0.0.1:"$port"/connection/websocket -p hermod --channels "$CHANNELS" \
      --fill "$FILL" -s 1024 --limit "$LIMIT" -c 8 --server-pid "$SP" --no-progress -q \
      --json "$DIR/r.json" "$@" || echo "hermod-bench exited $? (engine $engine $mode)" >&2
  kill "$SP"; wait "$SP" 2> /dev/null; SP=
  if [ -n "$NP" ]; then kill "$NP"; wait "$NP" 2> /dev/null; NP=; fi
}
for round in $(seq "$ROUNDS"); do
  for engine in ${ENGINES:-memory sqlite nats jetstream}; do
    for mode in client client-max api; do
      [ "$engine" = jetstream ] && [ "$mode" = api ] && continue
      case $mode in
        client) run "$engine" "$mode" -r "$RATE" -d "$DURATION" ;;
        client-max) run "$engine" "$mode" -r 0 -n "$READS" -d "$DURATION" ;;
        api) run "$engine" "$mode" --via api -r "$RATE" -d "$DURATION" ;;
      esac
      [ -f "$DIR/r.json" ] && echo "round=$round engine=$engine mode=$mode $(figures)"
    done
  done
done | tee "$DIR/lines"
python3 - "$DIR/lines" <<'PY'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    f = dict(re.findall(r"(\S+)=(\S+)", line))
    runs.setdefault((f["mode"], f["engine"]), []).append(f)
cols = ["reads/s", "p50_ms", "p90_ms", "p99_ms", "max_ms", "server_us_per_read"]
med = {k: {c: statistics.median(float(r[c]) for r in rs) for c in cols} for k, rs in runs.items()}
print("median of %s rounds; (x memory) is the ratio to the memory engine's median" %
      max(len(rs) for rs in runs.values()))
print("%-10s %-9s %s" % ("mode", "engine", "  ".join("%-20s" % c for c in cols)))
for (mode, engine), m in med.items():
    base = med.get((mode, "memory"))
    cells = ["%-20s" % ("%.3g (x%.3g)" % (m[c], m[c] / base[c]) if base and base[c] else "%.3g" % m[c])
             for c in cols]
    print("%-10s %-9s %s" % (mode, engine, "  ".join(cells)))
for mode in ("client", "client-max"):
    n, j = med.get((mode, "nats")), med.get((mode, "jetstream"))
    if n and j:
        print("%-10s nats engine / jetstream alone: %s" % (mode, "  ".join(
            "%s x%.3g" % (c, n[c] / j[c]) for c in cols[:5] if j[c])))
bad = [l for l in open(sys.argv[1]) if not re.search(r"wrong=0 failed=0", l)]
print("runs with a wrong or failed read: %d" % len(bad))
PY
