#!/usr/bin/env bash
# Compile-checks the GPU kernels of csrc/gpu without a GPU, and fails on any error or warning:
#   * nvcc for sm_80, sm_90 and sm_90a;
#   * the sources hipified by PyTorch's hipify (as a ROCm build of the extension does), compiled
#     with Debian's hipcc (ROCm 5.2) for gfx90a and with clang-19 for gfx90a and gfx942.
# The kernel files hold no torch headers, so this needs only the CPU torch (for hipify), nvcc and
# the apt packages below. IE_CSRC=<dir> checks another copy of csrc and IE_KERNELS="name ..." only
# some of csrc/gpu/*.cu (both used for the negative checks in csrc/COMPILE_CHECK.md).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
csrc=${IE_CSRC:-$root/csrc}
python=${PYTHON:-python3}
nvcc=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! command -v hipcc >/dev/null || ! command -v clang++-19 >/dev/null || ! command -v llvm-as-19 >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hipcc libamdhip64-dev clang-19 lld-19 llvm-19 >/dev/null
fi

cp -r "$csrc" "$work/csrc"
kernels=${IE_KERNELS:-$(cd "$work/csrc/gpu" && ls ./*.cu | sed 's|^\./||; s|\.cu$||')}

# The defines torch's cpp_extension passes: no implicit half/bf16 operators or conversions.
# sm_80 and sm_90 machine code come from one compute_80 PTX (the kernels do not test
# __CUDA_ARCH__), which saves a front-end pass; sm_90a needs its own.
cuda_flags=(-std=c++17 -O3 --expt-relaxed-constexpr -Werror all-warnings
            -D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__
            -D__CUDA_NO_BFLOAT16_CONVERSIONS__ -D__CUDA_NO_HALF2_OPERATORS__
            -gencode=arch=compute_80,code=[sm_80,sm_90] -gencode=arch=compute_90a,code=sm_90a)
hip_flags=(-std=c++17 -O3 -Werror -DUSE_ROCM -D__HIP_PLATFORM_AMD__=1 -D__HIP_NO_HALF_OPERATORS__=1
           -D__HIP_NO_HALF_CONVERSIONS__=1)

"$python" - "$work/csrc" <<'PY'
import glob, sys
from torch.utils.hipify import hipify_python
d = sys.argv[1]
hipify_python.hipify(project_directory=d, output_directory=d, header_include_dirs=[d],
                     includes=[d + "/*"], extra_files=sorted(glob.glob(d + "/gpu/*.cu")),
                     show_detailed=False, is_pytorch_extension=True, hipify_extra_files_only=True,
                     show_progress=False)
PY

# clang-19 has no device library for gfx942 in Debian's ROCm 5.2: derive it from gfx940's, whose
# code is the same apart from the ISA version constant.
devlibs="$work/devlibs"
mkdir -p "$devlibs"
ln -s /usr/lib/x86_64-linux-gnu/amdgcn/bitcode/*.bc "$devlibs/"
llvm-dis-19 "$devlibs/oclc_isa_version_940.bc" -o - | sed 's/i32 9400/i32 9402/' \
  | llvm-as-19 -o "$devlibs/oclc_isa_version_942.bc"

check() {  # name, then the command; the log is printed only on failure
  local name=$1 log
  log=$(mktemp -p "$work" log.XXXX)
  shift
  if "$@" >"$log" 2>&1; then echo "ok    $name"; else echo "FAIL  $name"; cat "$log"; return 1; fi
}

# Two compilers at a time: nvcc, and the two ROCm compilers one after the other.
(
  rc=0
  for k in $kernels; do
    check "nvcc sm_80/sm_90/sm_90a $k" "$nvcc" "${cuda_flags[@]}" -c "$work/csrc/gpu/$k.cu" \
      -o "$work/$k.o" || rc=1
  done
  exit $rc
) &
cuda_job=$!
status=0
for k in $kernels; do
  # HIP_PLATFORM=amd: without it Debian's hipcc silently hands the file to nvcc.
  check "hipcc gfx90a $k" env HIP_PLATFORM=amd hipcc --offload-arch=gfx90a "${hip_flags[@]}" \
    -c "$work/csrc/gpu/$k.hip" -o "$work/$k.hipcc.o" || status=1
  check "clang-19 gfx90a/gfx942 $k" clang++-19 -x hip --offload-arch=gfx90a --offload-arch=gfx942 \
    --rocm-path=/usr --rocm-device-lib-path="$devlibs" "${hip_flags[@]}" \
    -c "$work/csrc/gpu/$k.hip" -o "$work/$k.clang.o" || status=1
done
wait "$cuda_job" || status=1
exit $status
