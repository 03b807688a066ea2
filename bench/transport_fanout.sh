#!/bin/sh
# Fan-out to 1,000 subscribers of one channel per transport against one hermod (one worker):
# WebSocket (-p hermod), SSE on /connection/uni_sse (-p sse --token), the htmx fragments SSE
# stream (-p sse, anonymous), and uni_http_stream (-p http_stream --token), alternated for
# three rounds. The publisher is on the WebSocket in every run. RATE: publications/s.
# Run from the repository root after a release build: RATE=100 bench/transport_fanout.sh
set -e
RATE=${RATE:-100}
SUBS=${SUBS:-1000}
T=${TMPDIR:-/tmp}
SECRET=transport-bench-secret
cat > $T/tf-hermod.json <<JSON
{"token_hmac_secret_key": "$SECRET", "allow_anonymous_connect_without_token": true,
 "allow_subscribe_for_client": true, "allow_subscribe_for_anonymous": true,
 "allow_publish_for_client": true,
 "client_command_rate_limit": {"total": {"rate": 0}, "publish": {"rate": 0}},
 "uni_sse": true, "uni_http_stream": true, "fragments": true}
JSON
TOKEN=$(python3 -c '
import base64, hashlib, hmac, json, sys
b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=")
m = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + b"." + b(json.dumps({"sub": "bench", "channels": ["hb0"]}).encode())
print((m + b"." + b(hmac.new(sys.argv[1].encode(), m, hashlib.sha256).digest())).decode())' $SECRET)
./build/hermod serve --bind 127.0.0.1 --port 0 --workers 1 --config $T/tf-hermod.json 2>$T/tf-hermod.log &
PID=$!
for i in $(seq 50); do PORT=$(grep -o 'listening on http://[^ :]*:[0-9]*' $T/tf-hermod.log | grep -o '[0-9]*$' || true); [ -n "$PORT" ] && break; sleep 0.1; done
for round in 1 2 3; do
  for run in "ws:-p hermod" "uni_sse:-p sse --token $TOKEN" "fragments:-p sse" "uni_http_stream:-p http_stream --token $TOKEN"; do
    name=${run%%:*}
    ./build/hermod-bench fanout -u ws://127.0.0.1:$PORT/connection/websocket ${run#*:} -c $SUBS -r $RATE -d 10 --no-progress --server-pid $PID --json $T/tf-$name-$round.json >/dev/null
    python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))["summary"]
l = s["latency_us"]
print("%-16s round %s: deliveries/s %.0f, delivered %d of %d, lost %d, errors %d, p50 %.1f ms, p99 %.1f ms, server CPU s %.2f" % (
    sys.argv[2], sys.argv[3], s["deliveries_per_s"], s["delivered"], s["expected"], s["lost"],
    s["errors"], l["p50"] / 1000, l["p99"] / 1000, s.get("server_cpu_s", 0)))' $T/tf-$name-$round.json $name $round
  done
done
kill $PID; wait $PID || true
