#!/usr/bin/env bash
# cross-test.sh: the edge build, checked for correctness on linux/arm64
# under qemu-aarch64 (Debian's qemu-user, installed by make setup).
#
#   1. CGO_ENABLED=0 GOARCH=arm64: build optictl and the interp package's
#      test binary (static; qemu needs no sysroot for them);
#   2. run the interp tests under qemu-aarch64 (-short; TestPerfGemmKernels
#      is left out: it cross-checks the amd64 assembly kernels, which an
#      arm64 build does not have, and takes most of the time under qemu);
#   3. optictl compare --backends interp of every shared model against its
#      test_data_set_0 reference outputs, under qemu-aarch64.
#
# The timings it prints are of an emulator: a correctness check of the
# pure-Go code paths an ARM board runs, not a speed figure.
#
# Without qemu-aarch64 it says what to install and fails under CI=true
# (skips otherwise). MODELS overrides ../shared/models; CROSS_OUT the
# folder for the binaries (default bin/cross-test).
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}
models=${MODELS:-$(cd .. && pwd)/shared/models}
out=${CROSS_OUT:-bin/cross-test}

# Shared models interp cannot run (why): reported, not compared.
declare -A skip=(
	[tiny-gpt2-ortfused]="ONNX Runtime's fused com.microsoft.EmbedLayerNormalization, which interp has no kernel for"
)

if ! command -v qemu-aarch64 >/dev/null 2>&1; then
	msg="cross-test: qemu-aarch64 is missing: run scripts/setup-deps.sh (or apt-get install qemu-user)"
	if [[ ${CI:-} == true ]]; then
		echo "$msg (CI=true: this must not be skipped)" >&2
		exit 1
	fi
	echo "$msg; skipped" >&2
	exit 0
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
t0=$SECONDS
GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $GO build -o "$out/optictl-linux-arm64" ./cmd/optictl
GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $GO test -c -o "$out/interp-linux-arm64.test" ./pkg/runtime/interp
t1=$SECONDS
echo "cross-test: built linux/arm64 optictl and interp tests in $((t1 - t0))s"

(cd pkg/runtime/interp && qemu-aarch64 "$out/interp-linux-arm64.test" -test.short -test.skip '^TestPerfGemmKernels$' -test.timeout 5m)
t2=$SECONDS
echo "cross-test: interp tests on linux/arm64 (qemu) passed in $((t2 - t1))s"

compared=0
for dir in "$models"/*/; do
	name=$(basename "$dir")
	[[ -f $dir/model.onnx && -d $dir/test_data_set_0 ]] || continue
	if [[ -n ${skip[$name]:-} ]]; then
		echo "cross-test: $name not compared: ${skip[$name]}"
		continue
	fi
	echo "cross-test: optictl compare --backends interp $name (linux/arm64, qemu)"
	qemu-aarch64 "$out/optictl-linux-arm64" compare --backends interp "$dir/model.onnx" --data "$dir/test_data_set_0" | tail -1
	compared=$((compared + 1))
done
if [[ $compared -eq 0 ]]; then
	msg="cross-test: no shared models with test_data_set_0 under $models"
	if [[ ${CI:-} == true ]]; then
		echo "$msg (CI=true: this must not be skipped)" >&2
		exit 1
	fi
	echo "$msg; compare step skipped" >&2
fi
t3=$SECONDS
echo "cross-test: $compared shared models match their reference outputs on linux/arm64 (qemu) in $((t3 - t2))s; total $((t3 - t0))s"
echo "cross-test: qemu timings check correctness, they are not ARM speed figures"
