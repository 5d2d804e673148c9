#!/usr/bin/env bash
# make run: the services on the embedded memory store with the example
# configuration. Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
./bin/ratelimit -config examples/config/ratelimit.yaml -rules examples/rules -catalog examples/catalog &
pids+=($!)
./bin/authz -config examples/config/authz.yaml -catalog examples/catalog &
pids+=($!)
wait -n
