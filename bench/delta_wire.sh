#!/bin/sh
# Bytes on the wire with delta compression: 100 versions of a 10 KiB JSON document (3 bytes
# change in each) published through the API with `delta: true` to a centrifuge SDK
# subscriber with `delta: 'fossil'`, JSON and Protobuf builds, counted by a TCP proxy
# between the SDK and hermod (everything the server sends: pushes, frames, pings).
# Usage: bench/delta_wire.sh build/hermod   (needs `npm ci` in tests/integration/centrifuge)
set -e
hermod=$(realpath "${1:-build/hermod}")
cd "$(dirname "$0")/../tests/integration/centrifuge"
node delta_test.mjs --hermod "$hermod" --test-name-pattern=versions 2>&1 | grep 'on the wire'
