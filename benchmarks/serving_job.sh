#!/usr/bin/env bash
# The serving benchmark on a GPU machine: starts our server on Llama-3-8B-shaped dummy weights,
# sends the ShareGPT workload at each request rate, stops the server.
#   benchmarks/serving_job.sh OUT WORKLOAD [rate ...]   (default rates: 4 16 inf)
# NUM_PROMPTS (default 200) requests per rate; SERVER_ARGS are added to the server's flags; the
# server's log goes to OUT/server.log.
set -uo pipefail
OUT=$1 WL=$2
shift 2
RATES=${*:-4 16 inf}
PORT=${PORT:-8011}
python -m inference_engine.entrypoints.cli serve --model llama3-8b --load-format dummy \
    --skip-tokenizer-init --port "$PORT" ${SERVER_ARGS:-} > "$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null' EXIT
for _ in $(seq 300); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break
  kill -0 $SERVER 2>/dev/null || { echo "server died"; tail -20 "$OUT/server.log"; exit 1; }
  sleep 1
done
for rate in $RATES; do
  python benchmarks/benchmark_serving.py --base-url "http://127.0.0.1:$PORT" --workload "$WL" \
      --num-prompts "${NUM_PROMPTS:-200}" --request-rate "$rate" --json
done
