#!/bin/bash
# Reliable delivery, measured: `hermod-bench inbox` (USERS users x PER_USER publications, each
# acked) against hermod on the memory and the sqlite engine (a fresh file each run, the default
# synchronous=full; and synchronous=normal) and against nats-server -js alone (a file stream, one durable push consumer
# per user), in interleaved rounds, one server at a time on free loopback ports. Acks: batch
# (once per read: hermod's offsets read / JetStream AckAll) and, for JetStream, explicit per
# message. JETSTREAM=0 skips the JetStream runs.
# One line per run, then the medians. Stops everything it started.
# PER_REQUEST publications per request (hermod: an API `batch` with parallel: true; JetStream:
# that many publishes written at once). ENGINES (default "memory sqlite sqlite-normal") picks
# hermod's engines; `nats` is engine "nats" on a nats-server -js the run starts (a fresh store
# each run). BASELINE=<another hermod binary> runs it too in each round, right after HERMOD,
# its lines marked `engine=<engine>@baseline`: a same-run ratio of two builds.
# Usage: bench/inbox_engines.sh [HERMOD] [HERMOD_BENCH] [ROUNDS] [USERS] [PER_USER] [PUBLISHERS]
#        [PER_REQUEST]
set -u
HERMOD=${1:-build/hermod}; BENCH=${2:-build/hermod-bench}; ROUNDS=${3:-3}
USERS=${4:-1000}; PER_USER=${5:-50}; PUBLISHERS=${6:-64}; PER_REQUEST=${7:-1}
DIR=$(mktemp -d /tmp/hermod-inbox-engines-XXXXXX)
SP=; NP=
cleanup() {
  [ -n "$SP" ] && kill "$SP" 2> /dev/null && wait "$SP" 2> /dev/null
  [ -n "$NP" ] && kill "$NP" 2> /dev/null && wait "$NP" 2> /dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
python3 - "$DIR" <<'PY'
import json, sys
d = sys.argv[1]
base = {"api_key": "k", "token_hmac_secret_key": "hermod-bench",
        "user_subscribe_to_personal": True, "user_personal_channel_namespace": "inbox",
        "client_command_rate_limit": {"total": {"rate": 0}},
        "namespaces": [{"name": "inbox", "inbox": True, "inbox_size": 100000}]}
json.dump(base, open(d + "/memory.json", "w"))
base.update({"engine": "sqlite", "sqlite": {"path": d + "/bench.db"}})
json.dump(base, open(d + "/sqlite.json", "w"))
base["sqlite"]["synchronous"] = "normal"
json.dump(base, open(d + "/sqlite-normal.json", "w"))
del base["sqlite"]
base.update({"engine": "nats", "nats": {"url": "nats://127.0.0.1:NATS_PORT"}})
json.dump(base, open(d + "/nats.json", "w"))
PY
figures() {
  python3 -c "import json; s=json.load(open('$DIR/r.json'))['summary']; \
print('acked/s=%.0f p50_ms=%.2f p99_ms=%.2f acked=%d published=%d lost=%d dup=%d redelivered=%d reordered=%d server_us_per_ack=%.1f' % \
(s['acked_per_s'], s['latency_p50_ms'], s['latency_p99_ms'], s['acked'], s['published'], s['lost'], \
s['duplicates'], s['redelivered'], s['reordered'], s['server_cpu_s'] * 1e6 / max(1, s['acked'])))"
}
wait_port() { for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/"$1") 2> /dev/null && return; sleep 0.1; done; }
stop() { kill "$SP"; wait "$SP" 2> /dev/null; SP=; }
ARGS=(-c "$USERS" -n "$PER_USER" --publishers "$PUBLISHERS" --api-batch "$PER_REQUEST" -d 60 --drain 10 --no-progress -q
      --json "$DIR/r.json")
# One hermod run: binary, engine, label.
hermod_run() {
  rm -f "$DIR"/bench.db*
  local config="$DIR/$2.json"
  if [ "$2" = nats ]; then
    rm -rf "$DIR/kv"
    local nport; nport=$(freeport)
    nats-server -js -a 127.0.0.1 -p "$nport" -sd "$DIR/kv" > "$DIR/nats.log" 2>&1 &
    NP=$!; wait_port "$nport"
    sed "s/NATS_PORT/$nport/" "$DIR/nats.json" > "$DIR/nats-run.json"
    config="$DIR/nats-run.json"
  fi
  PORT=$(freeport)
  "$1" serve --bind 127.0.0.1 --port "$PORT" --config "$config" > "$DIR/server.log" 2>&1 &
  SP=$!; wait_port "$PORT"
  "$BENCH" inbox -u ws://127.0.0.1:"$PORT"/connection/websocket -p hermod --server-pid "$SP" "${ARGS[@]}"
  echo "round=$round hermod engine=$3 acks=batch $(figures)"
  stop
  if [ -n "$NP" ]; then kill "$NP"; wait "$NP" 2> /dev/null; NP=; fi
}
for round in $(seq "$ROUNDS"); do
  for engine in ${ENGINES:-memory sqlite sqlite-normal}; do
    hermod_run "$HERMOD" "$engine" "$engine"
    [ -n "${BASELINE:-}" ] && hermod_run "$BASELINE" "$engine" "$engine@baseline"
  done
  for ack in batch each; do
    [ "${JETSTREAM:-1}" = 0 ] && break
    rm -rf "$DIR/js"
    NPORT=$(freeport); WPORT=$(freeport)
    printf 'listen: 127.0.0.1:%s\njetstream { store_dir: "%s" }\nwebsocket { host: 127.0.0.1, port: %s, no_tls: true }\n' \
        "$NPORT" "$DIR/js" "$WPORT" > "$DIR/nats.conf"
    nats-server -c "$DIR/nats.conf" > "$DIR/nats.log" 2>&1 &
    SP=$!; wait_port "$WPORT"
    "$BENCH" inbox -u ws://127.0.0.1:"$WPORT"/ -p nats --ack "$ack" --server-pid "$SP" "${ARGS[@]}"
    echo "round=$round jetstream storage=file acks=$ack $(figures)"
    stop
  done
done | tee "$DIR/lines"
python3 - "$DIR/lines" <<'PY'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    key = " ".join(line.split()[1:4])
    runs.setdefault(key, []).append(dict(re.findall(r"(\S+)=([\d.]+)", line)))
for key, rs in runs.items():
    med = lambda f: statistics.median(float(r[f]) for r in rs)
    print("median %s: acked/s %.0f  publish->ack p50 %.2f ms p99 %.2f ms  server %.1f us/ack  (%d runs)"
          % (key, med("acked/s"), med("p50_ms"), med("p99_ms"), med("server_us_per_ack"), len(rs)))
PY
