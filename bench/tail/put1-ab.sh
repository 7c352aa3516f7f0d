#!/bin/bash
# put-1's latency tail, configuration against configuration: starts one member per run (fresh data dir),
# drives it with bench/grpc/loadgen.js at 1 client / 1 connection for DURATION_MS, prints req/s and
# p50 / p90 / p99 / max ms. Configurations alternate round by round, as in bench/run.ts.
#
#   bench/tail/put1-ab.sh ETCD "" "--backend-batch-interval 10s" "--max-semi-space-size=64|"
#
# A configuration is "<node flags>|<tetcd flags>" (no '|' = tetcd flags only); ETCD runs /usr/bin/etcd.
# tetcd runs with bin/tetcd's own node flags (its shebang line) first, so a configuration's node flags
# override them (V8 takes the last of a flag given twice).
# Build first (npm run build). ROUNDS (4), DURATION_MS (4000), WARMUP_MS (1000, as npm run bench: the first
# seconds of a fresh server are in the window), PORT (23790) tune it; KEYS (100000, as npm run bench's put-1)
# is the key space the puts draw from, KEYS=1 puts one key over and over.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-4}
DURATION_MS=${DURATION_MS:-4000}
WARMUP_MS=${WARMUP_MS:-1000}
PORT=${PORT:-23790}
KEYS=${KEYS:-100000}
PEER=$((PORT + 10))
TMP=$(mktemp -d /tmp/tetcd-put1-ab-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
SHIPPED=$(head -1 bin/tetcd | sed -E 's/^#!.*\bnode\b//')
node -e "const k=Buffer.from('key00001');const v=Buffer.alloc(256,97);require('fs').writeFileSync('$TMP/put.bin',Buffer.concat([Buffer.from([10,8]),k,Buffer.from([18,0x80,2]),v]))"
URLS=(--listen-client-urls "http://127.0.0.1:$PORT" --advertise-client-urls "http://127.0.0.1:$PORT"
  --listen-peer-urls "http://127.0.0.1:$PEER" --initial-advertise-peer-urls "http://127.0.0.1:$PEER"
  --initial-cluster "default=http://127.0.0.1:$PEER")
echo "round config req/s p50 p90 p99 max"
for r in $(seq 1 "$ROUNDS"); do
  for cfg in "$@"; do
    rm -rf "$TMP/data"
    if [ "$cfg" = ETCD ]; then
      etcd --data-dir "$TMP/data" "${URLS[@]}" > "$TMP/server.log" 2>&1 &
    else
      nodeflags=""; flags="$cfg"
      if [[ "$cfg" == *"|"* ]]; then nodeflags="${cfg%%|*}"; flags="${cfg#*|}"; fi
      # shellcheck disable=SC2086
      node $SHIPPED $nodeflags bin/tetcd --data-dir "$TMP/data" "${URLS[@]}" $flags > "$TMP/server.log" 2>&1 &
    fi
    pid=$!
    sleep 1.2
    if [ "$KEYS" = 1 ]; then bodies=(--body-file "$TMP/put.bin"); else bodies=(--put-keys "$KEYS"); fi
    node dist/bench/grpc/loadgen.js --target "127.0.0.1:$PORT" --path /etcdserverpb.KV/Put "${bodies[@]}" \
      --connections 1 --concurrency 1 --duration-ms "$DURATION_MS" --warmup-ms "$WARMUP_MS" --workers 1 > "$TMP/out.json"
    echo "$r [$cfg] $(node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1]));const l=r.latencyMs;console.log(r.rps, l.p50, l.p90, l.p99, l.max)' "$TMP/out.json")"
    kill "$pid"; wait "$pid" 2>/dev/null || true
  done
done
