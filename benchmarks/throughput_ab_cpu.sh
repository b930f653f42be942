#!/usr/bin/env bash
# CPU throughput of an older tree and this one, alternating old, new, old, new in one run (the
# machine's drift shows as the difference between the two runs of a tree).
#   benchmarks/throughput_ab_cpu.sh OLD_TREE [benchmark_throughput.py args]
# OLD_TREE: the older tree (e.g. `git worktree add OLD REV`); it takes this tree's built
# extension, so both must have the same csrc/. Default args: 30 ShareGPT requests on the
# embedded model in float32.
set -uo pipefail
OLD=$(cd "${1:?usage: throughput_ab_cpu.sh OLD_TREE [args]}" && pwd)
shift
HERE=$(cd "$(dirname "$0")/.." && pwd)
ARGS=("$@")
[ ${#ARGS[@]} -eq 0 ] && ARGS=(--workload "${SHAREGPT_WORKLOAD:-$HERE/../shared/workloads/sharegpt-1000.jsonl}"
                              --num-prompts 30 --dtype float32 --max-model-len 2048)
cp "$HERE"/inference_engine/_C*.so "$OLD/inference_engine/"
for tree in "$OLD" "$HERE" "$OLD" "$HERE"; do
  name=new && [ "$tree" = "$OLD" ] && name=old
  echo "=== $name: $tree"
  (cd "$tree" && OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} PYTHONPATH="$tree" \
     python benchmarks/benchmark_throughput.py "${ARGS[@]}" 2>&1 | grep -v "it/s\]" | tail -5)
done
