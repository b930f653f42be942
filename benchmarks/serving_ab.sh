#!/usr/bin/env bash
# The serving benchmark (serving_job.sh) on an older tree and on this one, alternating old, new,
# old, new in one call, for a change to the request path (the machine's drift shows as the
# difference between the two runs of a tree).
#   benchmarks/serving_ab.sh OUT OLD_TREE [rate ...]
# OLD_TREE: the older tree, unpacked (e.g. `git archive REV | gzip`); it takes this tree's built
# extension, so both must have the same csrc/. NUM_PROMPTS and SERVER_ARGS as in serving_job.sh;
# the workload is $SHAREGPT_WORKLOAD. Every run's lines go to OUT/serving_ab.log, marked.
set -uo pipefail
OUT=$1 OLD=$2
shift 2
HERE=$(cd "$(dirname "$0")/.." && pwd)
cp "$HERE"/inference_engine/_C*.so "$OLD/inference_engine/"
for tree in "$OLD" "$HERE" "$OLD" "$HERE"; do
  name=new
  [ "$tree" = "$OLD" ] && name=old
  (cd "$tree" && PYTHONPATH="$tree:${PYTHONPATH:-}" \
     bash "$HERE/benchmarks/serving_job.sh" "$OUT" "$SHAREGPT_WORKLOAD" "$@") 2>&1 \
    | sed "s/^/[$name] /" | tee -a "$OUT/serving_ab.log"
done
