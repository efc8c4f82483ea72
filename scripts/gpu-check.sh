#!/usr/bin/env bash
# gpu-check.sh: verify optictl's CUDA path on a GPU machine that cannot
# download anything and takes at most 64 MiB of untracked files per call.
#
#   scripts/gpu-check.sh prepare            (here, with network: build the bundle)
#   scripts/gpu-check.sh part N             (GPU machine: verify and stage part N)
#   scripts/gpu-check.sh run [--cpu-rehearsal]
#                                           (GPU machine: assemble, check, run the checks)
#   scripts/gpu-check.sh status             (what is prepared / staged / assembled)
#
# The route to a CUDA-enabled ONNX Runtime (ONNX Runtime is not built for
# CUDA on that machine; its CUDA 13 and cuDNN 9 come as Python nvidia-*
# packages):
#   - npm onnxruntime-node@1.29.0 carries the core libonnxruntime.so.1
#     (ONNX Runtime 1.29.0, C API 24+, what onnxruntime_go v1.27 needs);
#   - npm com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9 carries the
#     matching 1.29.0 providers built for CUDA 13:
#     libonnxruntime_providers_cuda.so (~230 MB; needs libcublasLt.so.13,
#     libcublas.so.13, libcurand.so.10, libcudart.so.13, cuDNN 9),
#     libonnxruntime_providers_shared.so and libonnxruntime_providers_tensorrt.so
#     (needs libnvinfer.so.10, which that machine lacks: TensorRT cannot be
#     verified there).
#   ONNX Runtime loads the providers from the folder of the core library, so
#   all four go into one folder (payload/lib).
#
# prepare (network, npm, go, zstd, ~1.5 GB of scratch space):
#   npm view + npm pack both packages (no install scripts run), extract the
#   libraries, build bin/optictl for linux/amd64 with cgo, copy the shared
#   models (../shared/models, without the conformance suite), compress each
#   file with zstd -19 (cached by the source's sha256 in work/), put them with
#   a zstd binary and a manifest of sha256s into one uncompressed tar, and
#   split it into parts of at most $GPU_CHECK_PART_BYTES (default 60,000,000)
#   bytes under parts/, with parts/MANIFEST (sha256 of every part).
#
# On the GPU machine, one call per part, back to back (the machine keeps
# ignored files between calls made within ~30 s), carrying the part and the
# manifest:
#   part N   checks part N's sha256 against parts/MANIFEST and copies it to
#            stage/ (not a carried path, so it stays while the machine is warm)
#   run      checks every staged part, untars the bundle, decompresses each
#            file (zstd from PATH, else the bundled one), checks every file's
#            sha256, finds the nvidia-* lib folders under python3's
#            site-packages for LD_LIBRARY_PATH, and runs the checks, each
#            bounded by `timeout`; a failing check does not stop the others.
#            Logs and results.json go to $OUT (or $GPU_DIR/out): at most 8
#            files, as the device tool returns.
#   run --cpu-rehearsal  the same checks with --device cpu (no GPU needed):
#            proves the bundle, paths, logs and JSON on the CPU side.
#
# Environment:
#   OPTICTL_GPU_DIR       working folder (default <repo>/.cache/gpu, git-ignored)
#   GPU_CHECK_PART_BYTES  largest part (default 60000000)
#   GPU_CHECK_ZSTD_LEVEL  zstd level (default 19; a lower one only to iterate quickly)
#   GPU_CHECK_ZSTD        "bundled" forces the bundled zstd (rehearsal)
#   GPU_CHECK_GRAPH_MODEL shared model for the CUDA graph check (default mnist)
#   GPU_CHECK_BUDGET_S    stop starting new checks after this many seconds (default 420)
#   GPU_CHECK_TIMEOUT_SCALE  multiply each check's timeout (a rehearsal on a busy
#                         2-core machine needs 3, with GPU_CHECK_BUDGET_S=1500)
#   KEEP_DOWNLOADS=1      keep the npm tarballs after prepare
set -uo pipefail

ORT_VERSION=1.29.0
CORE_PKG="onnxruntime-node@$ORT_VERSION"
GPU_PKG="com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9"
CORE_MEMBER="package/bin/napi-v6/linux/x64/libonnxruntime.so.1"
GPU_DIR_IN_PKG="package/Plugins/Linux/x64"
PROVIDERS=(libonnxruntime_providers_shared.so libonnxruntime_providers_tensorrt.so libonnxruntime_providers_cuda.so)
CORE_NAME="libonnxruntime.so.$ORT_VERSION"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GPU_DIR="${OPTICTL_GPU_DIR:-$repo/.cache/gpu}"
PART_BYTES="${GPU_CHECK_PART_BYTES:-60000000}"
LEVEL="${GPU_CHECK_ZSTD_LEVEL:-19}"

die() {
	echo "gpu-check: $*" >&2
	exit 1
}
say() { echo "gpu-check: $*"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
need() {
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || die "$t is missing${HINT:+ ($HINT)}"
	done
}

usage() {
	sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
	exit 2
}

# ---------------------------------------------------------------- prepare

# zcache SRC NAME: SRC compressed with zstd -19 into $GPU_DIR/work/NAME.zst,
# reused when SRC's sha256 is unchanged.
zcache() {
	local src=$1 name=$2 w="$GPU_DIR/work"
	local s
	s=$(sha "$src")
	if [[ -f "$w/$name.zst" && -f "$w/$name.src" && "$(cat "$w/$name.src")" == "$s $LEVEL" ]]; then
		say "  $name: compressed copy is current"
	else
		say "  $name: zstd -$LEVEL ($(stat -c %s "$src") bytes$( (($(stat -c %s "$src") > 100000000)) && echo '; this one takes many minutes'))"
		rm -f "$w/$name.zst" "$w/$name.src"
		mkdir -p "$(dirname "$w/$name")"
		zstd -q -"$LEVEL" -T0 -f -o "$w/$name.zst.tmp" "$src" || die "zstd failed on $src"
		mv "$w/$name.zst.tmp" "$w/$name.zst"
		echo "$s $LEVEL" >"$w/$name.src"
	fi
	mkdir -p "$(dirname "$GPU_DIR/bundle/$name")"
	cp "$w/$name.zst" "$GPU_DIR/bundle/$name.zst"
	printf '%s  %s\n' "$s" "$name" >>"$GPU_DIR/bundle/FILES.sha256"
}

npm_fetch() { # PKG@VER -> path of its .tgz in $GPU_DIR/dl
	local spec=$1 integrity tgz
	integrity=$(npm view "$spec" dist.integrity 2>/dev/null) || die "npm view $spec failed (no such package or version, or offline)"
	[[ -n "$integrity" ]] || die "npm view $spec: no such version"
	tgz=$(cd "$GPU_DIR/dl" && npm pack --silent --ignore-scripts --dry-run "$spec" 2>/dev/null | tail -1)
	if [[ -z "$tgz" || ! -f "$GPU_DIR/dl/$tgz" ]]; then
		tgz=$(cd "$GPU_DIR/dl" && npm pack --silent --ignore-scripts "$spec" | tail -1) || die "npm pack $spec failed"
	fi
	local got
	got="sha512-$(openssl dgst -sha512 -binary "$GPU_DIR/dl/$tgz" | base64 -w0)"
	[[ "$got" == "$integrity" ]] || die "$tgz: integrity $got does not match the registry's $integrity"
	echo "$GPU_DIR/dl/$tgz"
}

prepare() {
	HINT="apt-get install -y npm zstd openssl" need npm zstd tar sha256sum split openssl go
	[[ "$(uname -s)/$(uname -m)" == Linux/x86_64 ]] || die "prepare runs on Linux x86-64 (the GPU machine is x86-64)"
	mkdir -p "$GPU_DIR"/{dl,work,x}
	local avail
	avail=$(df -Pk "$GPU_DIR" | awk 'NR==2{print $4}')
	((avail > 1500000)) || die "less than 1.5 GB free under $GPU_DIR ($((avail / 1024)) MB)"

	say "npm view (what the registry holds):"
	for spec in "$CORE_PKG" "$GPU_PKG"; do
		echo "  $spec: $(npm view "$spec" dist.tarball 2>/dev/null)"
	done
	local core_tgz gpu_tgz
	core_tgz=$(npm_fetch "$CORE_PKG") || exit 1
	gpu_tgz=$(npm_fetch "$GPU_PKG") || exit 1
	say "members of $GPU_PKG:"
	tar -tvzf "$gpu_tgz" | awk '$3 > 100000 {print "  " $3 "  " $6}'

	rm -rf "$GPU_DIR/x" "$GPU_DIR/bundle" "$GPU_DIR/parts"
	mkdir -p "$GPU_DIR/x" "$GPU_DIR/bundle/tools" "$GPU_DIR/parts"
	tar -xzf "$core_tgz" -C "$GPU_DIR/x" "$CORE_MEMBER" || die "$core_tgz lacks $CORE_MEMBER"
	tar -xzf "$gpu_tgz" -C "$GPU_DIR/x" "${PROVIDERS[@]/#/$GPU_DIR_IN_PKG/}" || die "$gpu_tgz lacks one of ${PROVIDERS[*]}"
	local ver
	ver=$(strings "$GPU_DIR/x/$CORE_MEMBER" | grep -m1 -x "$ORT_VERSION")
	[[ "$ver" == "$ORT_VERSION" ]] || die "$CORE_MEMBER does not name ONNX Runtime $ORT_VERSION"
	say "NEEDED by the CUDA provider: $(readelf -d "$GPU_DIR/x/$GPU_DIR_IN_PKG/libonnxruntime_providers_cuda.so" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')"
	say "NEEDED by the TensorRT provider: $(readelf -d "$GPU_DIR/x/$GPU_DIR_IN_PKG/libonnxruntime_providers_tensorrt.so" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')"

	say "building optictl for linux/amd64 (cgo)"
	mkdir -p "$GPU_DIR/x/bin"
	(cd "$repo" && CGO_ENABLED=1 GOOS=linux GOARCH=amd64 go build -trimpath \
		-ldflags "-s -w -X main.version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)-gpu" \
		-o "$GPU_DIR/x/bin/optictl" ./cmd/optictl) || die "go build failed"
	local glibc
	glibc=$(objdump -T "$GPU_DIR/x/bin/optictl" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
	say "optictl needs up to $glibc (run records the GPU machine's glibc in env.log)"

	local models="${GPU_CHECK_MODELS:-$repo/../shared/models}"
	[[ -d "$models" ]] || die "no shared models at $models (set GPU_CHECK_MODELS)"
	tar -C "$models" --exclude=conformance --exclude=edge-cases -cf "$GPU_DIR/x/models.tar" . || die "tar of $models failed"

	say "compressing (zstd -19, cached in $GPU_DIR/work)"
	: >"$GPU_DIR/bundle/FILES.sha256"
	zcache "$GPU_DIR/x/$CORE_MEMBER" "lib/$CORE_NAME"
	zcache "$GPU_DIR/x/bin/optictl" "bin/optictl"
	zcache "$GPU_DIR/x/models.tar" "models.tar"
	for p in "${PROVIDERS[@]}"; do # the CUDA provider (minutes) last
		zcache "$GPU_DIR/x/$GPU_DIR_IN_PKG/$p" "lib/$p"
	done
	# zstd for the GPU machine (its image may lack it): a Debian 12 build that
	# needs only glibc 2.34+, libz, liblzma, liblz4.
	cp "$(command -v zstd)" "$GPU_DIR/bundle/tools/zstd"
	printf '%s  %s\n' "$(sha "$GPU_DIR/bundle/tools/zstd")" "tools/zstd" >>"$GPU_DIR/bundle/FILES.sha256"

	(cd "$GPU_DIR/bundle" && tar --owner=0 --group=0 -cf "$GPU_DIR/x/bundle.tar" FILES.sha256 tools lib bin models.tar.zst) || die "tar of the bundle failed"
	split -b "$PART_BYTES" -d -a 1 --numeric-suffixes=1 "$GPU_DIR/x/bundle.tar" "$GPU_DIR/parts/part" || die "split failed"
	local n=0
	{
		echo "# gpu-check bundle, $(date -u +%FT%TZ); bundle sha256 $(sha "$GPU_DIR/x/bundle.tar")"
		for f in "$GPU_DIR"/parts/part[0-9]*; do
			printf '%s  %s  %s\n' "$(sha "$f")" "$(basename "$f")" "$(stat -c %s "$f")"
			n=$((n + 1))
		done
		echo "# files in the bundle (sha256 of each file once decompressed):"
		sed 's/^/# /' "$GPU_DIR/bundle/FILES.sha256"
	} >"$GPU_DIR/parts/MANIFEST"
	rm -rf "$GPU_DIR/x" "$GPU_DIR/bundle"
	[[ "${KEEP_DOWNLOADS:-}" == 1 ]] || rm -rf "$GPU_DIR/dl"
	say "$n parts in $GPU_DIR/parts:"
	grep -v '^#' "$GPU_DIR/parts/MANIFEST" | sed 's/^/  /'
	local rel=${GPU_DIR#"$repo"/}
	say "on the GPU machine, one call each, back to back:"
	for ((i = 1; i <= n; i++)); do
		if ((i < n)); then
			echo "  carry [$rel/parts/part$i, $rel/parts/MANIFEST]: scripts/gpu-check.sh part $i"
		else
			echo "  carry [$rel/parts/part$i, $rel/parts/MANIFEST]: scripts/gpu-check.sh part $i && scripts/gpu-check.sh run"
		fi
	done
}

# ---------------------------------------------------------------- part

manifest_parts() { grep -v '^#' "$1" | awk 'NF>=2 {print $1, $2}'; }

part() {
	local n=${1:-}
	[[ "$n" =~ ^[0-9]+$ ]] || die "part needs a part number (1, 2, ...)"
	local m="$GPU_DIR/parts/MANIFEST" f="$GPU_DIR/parts/part$n"
	[[ -f "$m" ]] || die "$m is missing: carry it with the part"
	[[ -f "$f" ]] || die "$f is missing: carry it (run \`scripts/gpu-check.sh prepare\` first where npm works)"
	local want
	want=$(manifest_parts "$m" | awk -v p="part$n" '$2 == p {print $1}')
	[[ -n "$want" ]] || die "the manifest lists no part$n"
	local got
	got=$(sha "$f")
	[[ "$got" == "$want" ]] || die "part$n: sha256 $got, the manifest says $want (carried incompletely, or from another prepare)"
	mkdir -p "$GPU_DIR/stage"
	# A manifest of another prepare invalidates what is staged.
	if [[ -f "$GPU_DIR/stage/MANIFEST" ]] && ! cmp -s "$m" "$GPU_DIR/stage/MANIFEST"; then
		say "a different prepare was staged before: starting over"
		rm -rf "$GPU_DIR/stage" "$GPU_DIR/payload"
		mkdir -p "$GPU_DIR/stage"
	fi
	cp "$m" "$GPU_DIR/stage/MANIFEST"
	cp "$f" "$GPU_DIR/stage/part$n.tmp" && mv "$GPU_DIR/stage/part$n.tmp" "$GPU_DIR/stage/part$n"
	say "part$n ok (sha256 $got), staged in $GPU_DIR/stage"
	staged_report
	if command -v zstd >/dev/null 2>&1; then
		say "zstd on PATH: $(command -v zstd)"
	else
		say "no zstd on PATH: run will use the bundled one"
	fi
}

staged_report() {
	local m="$GPU_DIR/stage/MANIFEST" have=() miss=() s p
	[[ -f "$m" ]] || {
		say "nothing staged"
		return 1
	}
	while read -r s p; do
		if [[ -f "$GPU_DIR/stage/$p" ]]; then have+=("$p"); else miss+=("$p"); fi
	done < <(manifest_parts "$m")
	say "staged: ${have[*]:-none}; missing: ${miss[*]:-none}"
	((${#miss[@]} == 0))
}

# ---------------------------------------------------------------- assemble

assemble() {
	local p="$GPU_DIR/payload"
	if [[ -f "$p/.verified" ]] && cmp -s "$p/.verified" "$GPU_DIR/stage/MANIFEST"; then
		say "payload already assembled and verified"
		return 0
	fi
	staged_report || die "parts are missing: run \`part N\` for each (the machine keeps them only while warm)"
	local s f
	while read -r s f; do
		[[ "$(sha "$GPU_DIR/stage/$f")" == "$s" ]] || die "staged $f has the wrong sha256"
	done < <(manifest_parts "$GPU_DIR/stage/MANIFEST")
	rm -rf "$p" "$p.tmp"
	mkdir -p "$p.tmp/z"
	cat $(manifest_parts "$GPU_DIR/stage/MANIFEST" | awk -v d="$GPU_DIR/stage" '{print d "/" $2}') | tar -x -C "$p.tmp/z" ||
		die "the assembled bundle is not a valid tar"
	local zstd_bin
	if [[ "${GPU_CHECK_ZSTD:-}" != bundled ]] && command -v zstd >/dev/null 2>&1; then
		zstd_bin=$(command -v zstd)
	else
		zstd_bin="$p.tmp/z/tools/zstd"
		chmod +x "$zstd_bin"
		"$zstd_bin" --version >/dev/null 2>&1 || die "the bundled zstd does not run here: $("$zstd_bin" --version 2>&1 | head -1)"
	fi
	say "decompressing with $zstd_bin"
	while read -r s f; do
		[[ "$f" == tools/zstd ]] && continue
		mkdir -p "$(dirname "$p.tmp/$f")"
		"$zstd_bin" -q -d -f -o "$p.tmp/$f" "$p.tmp/z/$f.zst" || die "decompressing $f failed"
		[[ "$(sha "$p.tmp/$f")" == "$s" ]] || die "$f: sha256 mismatch after decompression"
		say "  $f ok ($(stat -c %s "$p.tmp/$f") bytes, sha256 $s)"
	done <"$p.tmp/z/FILES.sha256"
	mkdir -p "$p.tmp/models"
	tar -xf "$p.tmp/models.tar" -C "$p.tmp/models" || die "models.tar is broken"
	rm -rf "$p.tmp/z" "$p.tmp/models.tar"
	chmod +x "$p.tmp/bin/optictl"
	ln -sf "$CORE_NAME" "$p.tmp/lib/libonnxruntime.so.1"
	cp "$GPU_DIR/stage/MANIFEST" "$p.tmp/.verified"
	mv "$p.tmp" "$p"
	say "payload verified in $p"
}

# ---------------------------------------------------------------- run

# Per-model tolerances for CUDA against the CPU reference outputs
# (test_data_set_N/output_K.pb, made with ONNX Runtime 1.30 CPU). ORT's CUDA
# provider uses TF32 for MatMul/Conv by default (use_tf32=1): ~1e-3 relative
# error per accumulation, so conv/matmul models with large outputs get more
# absolute slack. name atol rtol why
TOLERANCES="
mnist 1e-2 1e-3 conv-logits-of-magnitude-10-100-TF32
ppocr-cls 1e-3 1e-3 softmax-probabilities
silero-vad-v5 1e-3 1e-3 sigmoid-probability-and-LSTM-state
silero-vad-16k-op15 1e-3 1e-3 sigmoid-probability-and-LSTM-state
oww-melspectrogram 5e-2 1e-3 log-mel-of-magnitude-10-via-Conv-STFT-TF32
oww-embedding 1e-2 1e-3 96-d-conv-embedding-TF32
gonnx-ndm 1e-3 1e-3 small-GRU-regressor
gonnx-gru 1e-4 1e-3 tiny-GRU
tiny-gpt2-ortfused 1e-3 1e-3 fused-attention-logits
"

LOGS=""
RES=""
T0=0

# check NAME SECONDS CMD...: run CMD under timeout, log it, record the result.
check() {
	local name=$1 t=$2
	shift 2
	local now=$(($(date +%s) - T0))
	if ((now + 5 > BUDGET)); then
		say "SKIP $name: the run's budget of ${BUDGET}s is spent"
		printf '%s\t%s\t%s\t%s\t%s\n' "$name" skipped 0 0 "$*" >>"$RES"
		return 0
	fi
	t=$((t * ${GPU_CHECK_TIMEOUT_SCALE:-1}))
	((now + t > BUDGET)) && t=$((BUDGET - now))
	local start end rc status
	start=$(date +%s.%N)
	{
		echo "\$ $*"
		timeout -k 5 "$t" "$@"
	} >"$LOGS/$name.log" 2>&1
	rc=$?
	end=$(date +%s.%N)
	case $rc in
	0) status=pass ;;
	1) [[ $name == tensorrt-refusal ]] && grep -q "TensorRT execution provider unavailable" "$LOGS/$name.log" && status=refused-cleanly || status=fail ;;
	124 | 137) status=timeout ;;
	3) status=out-of-tolerance ;;
	*) status=fail ;;
	esac
	local secs
	secs=$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b - a}')
	printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$secs" "$*" >>"$RES"
	say "$(printf '%-28s %-16s rc=%-3s %6ss' "$name" "$status" "$rc" "$secs")"
}

# serve_check NAME IOBINDING: start serve on ppocr-cls with dynamic batching,
# send 48 concurrent KServe v2 HTTP requests, check the answers and that some
# executions merged several requests (optictl_batch_size histogram).
serve_check() {
	local name=$1 extra=$2 port=$3
	local log="$LOGS/$name.server.log"
	"$BIN" serve "ppocr=$MODELS/ppocr-cls/model.onnx" --backend ort --device "$DEV" $extra \
		--max-batch 8 --max-queue-delay 5ms --instances 1 --threads 4 \
		--http "127.0.0.1:$port" --grpc off >"$log" 2>&1 &
	local pid=$!
	python3 - "$port" "$LOGS/$name.json" "$pid" <<'PY'
import json, os, random, sys, threading, time, urllib.request
port, out, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
base = f"http://127.0.0.1:{port}"
res = {"ready": False}
def get(path):
    with urllib.request.urlopen(base + path, timeout=10) as r:
        return r.status, r.read()
t0 = time.time()
while time.time() - t0 < 90:
    try:  # a server that exited is a zombie until the shell reaps it
        alive = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        alive = False
    if not alive:
        res["error"] = "the server exited before it was ready (see its log)"
        break
    try:
        if get("/v2/health/ready")[0] == 200:
            res["ready"] = True
            break
    except Exception:
        time.sleep(0.25)
res["ready_after_s"] = round(time.time() - t0, 2)
if not res["ready"]:
    json.dump(res, open(out, "w"), indent=1); print(json.dumps(res)); sys.exit(1)
meta = json.loads(get("/v2/models/ppocr")[1])
res["metadata_inputs"] = meta.get("inputs")
rng = random.Random(1)
N = 48
answers, errors, lat = [None] * N, [], [None] * N
def one(i):
    body = {"inputs": [{"name": "x", "shape": [1, 3, 48, 192], "datatype": "FP32",
                        "data": [rng.random() for _ in range(3 * 48 * 192)]}]}
    req = urllib.request.Request(base + "/v2/models/ppocr/infer", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    s = time.time()
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            answers[i] = json.loads(r.read())
    except Exception as e:
        errors.append(f"request {i}: {e}")
    lat[i] = (time.time() - s) * 1000
ts = [threading.Thread(target=one, args=(i,)) for i in range(N)]
[t.start() for t in ts]; [t.join() for t in ts]
ok = 0
for a in answers:
    if not a: continue
    o = a["outputs"][0]
    if o["shape"] == [1, 2] and abs(sum(o["data"]) - 1) < 1e-3:
        ok += 1
res.update(requests=N, ok=ok, errors=errors[:5],
           latency_ms={"p50": sorted(l for l in lat if l)[len([l for l in lat if l]) // 2] if ok else None,
                       "max": max((l for l in lat if l), default=None)})
metrics = get("/metrics")[1].decode()
hist = {}
for line in metrics.splitlines():
    if line.startswith("optictl_batch_size_bucket"):
        le = line.split('le="')[1].split('"')[0]
        hist[le] = float(line.rsplit(" ", 1)[1])
    elif line.startswith("optictl_batch_size_count") or line.startswith("optictl_batch_size_sum"):
        hist[line.split("{")[0].split(" ")[0].rsplit("_", 1)[1]] = float(line.rsplit(" ", 1)[1])
res["batch_size_histogram"] = hist
execs, merged = hist.get("count", 0), hist.get("sum", 0)
res["executions"], res["mean_batch"] = execs, (merged / execs if execs else None)
res["dynamic_batching"] = bool(execs and merged / execs > 1)
res["pass"] = ok == N and res["dynamic_batching"]
json.dump(res, open(out, "w"), indent=1)
print(json.dumps({k: res[k] for k in ("ok", "requests", "executions", "mean_batch", "dynamic_batching", "pass")}))
sys.exit(0 if res["pass"] else 3)
PY
	local rc=$?
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	tail -20 "$log"
	return $rc
}
export -f serve_check

run_checks() {
	local rehearsal=0
	[[ "${1:-}" == --cpu-rehearsal ]] && rehearsal=1
	need python3 timeout awk
	T0=$(date +%s)
	BUDGET=${GPU_CHECK_BUDGET_S:-420}
	assemble || exit 1
	local P="$GPU_DIR/payload"
	OUTDIR="${OUT:-$GPU_DIR/out}"
	mkdir -p "$OUTDIR"
	LOGS="$GPU_DIR/logs"
	rm -rf "$LOGS" && mkdir -p "$LOGS"
	RES="$LOGS/results.tsv"
	: >"$RES"
	export BIN="$P/bin/optictl" MODELS="$P/models"
	export ONNXRUNTIME_SHARED_LIBRARY_PATH="$P/lib/$CORE_NAME"
	DEV=cuda
	((rehearsal)) && DEV=cpu
	export DEV LOGS

	# LD_LIBRARY_PATH: every folder under site-packages/nvidia that holds a
	# shared library (nvidia/cu13/lib, nvidia/cudnn/lib, ...).
	local libdirs
	libdirs=$(python3 - <<'PY'
import glob, os, site, sys
roots = list(site.getsitepackages()) + [site.getusersitepackages()] + [p for p in sys.path if p.endswith("site-packages")]
dirs = []
for r in roots:
    for f in glob.glob(os.path.join(r, "nvidia", "**", "lib*.so*"), recursive=True):
        d = os.path.dirname(f)
        if d not in dirs:
            dirs.append(d)
print(":".join(dirs))
PY
	)
	# The driver's libcuda.so.1 normally comes through ldconfig; the
	# container mount of the driver folder is added in case it does not.
	for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
		[[ -d $d ]] && libdirs="${libdirs:+$libdirs:}$d"
	done
	export LD_LIBRARY_PATH="$P/lib${libdirs:+:$libdirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
	{
		echo "mode: $([[ $rehearsal == 1 ]] && echo cpu-rehearsal || echo cuda)"
		echo "date: $(date -u +%FT%TZ)"
		echo "host: $(uname -a)"
		echo "glibc: $(ldd --version 2>&1 | head -1)"
		echo "python3: $(command -v python3) $(python3 --version 2>&1)"
		echo "ONNXRUNTIME_SHARED_LIBRARY_PATH=$ONNXRUNTIME_SHARED_LIBRARY_PATH"
		echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
		echo "--- nvidia-smi"
		nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | head -5
		for l in "$P"/lib/libonnxruntime_providers_*.so; do
			echo "--- ldd $(basename "$l") (not found = missing on this machine)"
			ldd "$l" 2>&1 | grep -E 'not found|cu|nvinfer|cudnn' | sed 's/ (0x.*//'
		done
		echo "--- payload"
		ls -l "$P/lib" "$P/bin"
	} >"$OUTDIR/env.log" 2>&1
	say "mode $DEV; environment in $OUTDIR/env.log"

	# 1. backends and a first session on the device.
	check backends 30 "$BIN" backends --json
	check device-smoke 60 "$BIN" run "$MODELS/mnist/model.onnx" --backend ort --device "$DEV" \
		--data "$MODELS/mnist/test_data_set_0" --json

	# 2. compare: every shared model on $DEV against the CPU reference outputs.
	local m atol rtol why
	while read -r m atol rtol why; do
		[[ -z "$m" ]] && continue
		if [[ ! -f "$MODELS/$m/model.onnx" ]]; then
			printf '%s\t%s\t%s\t%s\t%s\n' "compare-$m" missing-model 1 0 "$MODELS/$m/model.onnx" >>"$RES"
			continue
		fi
		check "compare-$m" 60 "$BIN" compare "$MODELS/$m/model.onnx" --backends ort --device "$DEV" \
			--data "$MODELS/$m" --atol "$atol" --rtol "$rtol" --json
	done <<<"$TOLERANCES"

	# 3. bench: CPU and the device side by side at batch 1/8/32.
	local bm="$MODELS/ppocr-cls/model.onnx" bshape="x=1x3x48x192"
	local bflags=(--backend ort --batch 1,8,32 --shape "$bshape" --iterations 150 --warmup 10 --rounds 3)
	check bench-cpu 120 "$BIN" bench "$bm" "${bflags[@]}" --device cpu --json "$LOGS/bench-cpu.json"
	check bench-device 120 "$BIN" bench "$bm" "${bflags[@]}" --device "$DEV" --json "$LOGS/bench-device.json"

	# 4. I/O binding: the same bench with inputs and outputs bound once.
	local iflags=(--backend ort --batch 1,32 --shape "$bshape" --iterations 200 --warmup 10 --rounds 3 --device "$DEV")
	check iobinding-off 90 "$BIN" bench "$bm" "${iflags[@]}" --json "$LOGS/iobinding-off.json"
	check iobinding-on 90 "$BIN" bench "$bm" "${iflags[@]}" --io-binding --json "$LOGS/iobinding-on.json"
	check iobinding-compare 60 "$BIN" compare "$bm" --backends ort --device "$DEV" --io-binding \
		--data "$MODELS/ppocr-cls" --atol 1e-3 --rtol 1e-3 --json

	# 5. CUDA graphs on a fixed-shape model (mnist: 1x1x28x28; another with
	# GPU_CHECK_GRAPH_MODEL=oww-embedding, say, if ORT refuses to capture
	# mnist). ORT replays the captured graph on the same device addresses,
	# hence --io-binding.
	local gflags=(--backend ort --iterations 300 --warmup 10 --rounds 3 --device "$DEV" --io-binding)
	local graph=(--provider-option enable_cuda_graph=1)
	((rehearsal)) && graph=() # provider options need a GPU device
	local gm="${GPU_CHECK_GRAPH_MODEL:-mnist}"
	check cudagraph-off 60 "$BIN" bench "$MODELS/$gm/model.onnx" "${gflags[@]}" --json "$LOGS/cudagraph-off.json"
	check cudagraph-on 60 "$BIN" bench "$MODELS/$gm/model.onnx" "${gflags[@]}" "${graph[@]}" --json "$LOGS/cudagraph-on.json"
	check cudagraph-compare 60 "$BIN" compare "$MODELS/$gm/model.onnx" --backends ort --device "$DEV" \
		--io-binding "${graph[@]}" --data "$MODELS/$gm" --atol 1e-2 --rtol 1e-3 --json

	# 6. serve: KServe v2 over HTTP with dynamic batching, then with --io-binding.
	check serve 120 bash -c 'serve_check serve "" 18080'
	check serve-iobinding 120 bash -c 'serve_check serve-iobinding --io-binding 18081'

	# TensorRT: its provider needs libnvinfer.so.10, absent on that machine.
	check tensorrt-refusal 60 "$BIN" run "$MODELS/mnist/model.onnx" --backend ort --device tensorrt \
		--data "$MODELS/mnist/test_data_set_0"

	summarize "$rehearsal"
}

summarize() {
	local rehearsal=$1
	# checks.log: every check's log, one after the other.
	for f in $(cut -f1 "$RES"); do
		echo "=================== $f"
		cat "$LOGS/$f.log" 2>/dev/null
		[[ -f "$LOGS/$f.server.log" ]] && {
			echo "----- server log (last 40 lines)"
			tail -40 "$LOGS/$f.server.log"
		}
	done >"$OUTDIR/checks.log"
	python3 - "$RES" "$LOGS" "$OUTDIR/results.json" "$rehearsal" "$DEV" "$TOLERANCES" <<'PY'
import json, os, sys
res, logs, out, rehearsal, dev, tol = sys.argv[1:7]
tols = {l.split()[0]: {"atol": float(l.split()[1]), "rtol": float(l.split()[2]), "why": l.split()[3].replace("-", " ")}
        for l in tol.strip().splitlines() if l.strip()}
def load(p):
    try:
        return json.load(open(p))
    except Exception:
        return None
def stdout_json(name):
    try:
        txt = open(os.path.join(logs, name + ".log")).read()
    except OSError:
        return None
    i = txt.find("\n{")
    j = txt.find("\n[")
    for k in sorted(x for x in (i, j) if x >= 0):
        try:
            return json.JSONDecoder().raw_decode(txt[k + 1:])[0]
        except Exception:
            pass
    return None
def points(rep):
    if not rep:
        return {}
    return {r["batch"]: {"p50_ms": r["latency_ms"]["p50"], "p90_ms": r["latency_ms"]["p90"],
                         "p99_ms": r["latency_ms"]["p99"], "throughput_per_s": r["throughput_per_s"],
                         "samples_per_s": r["samples_per_s"], "count": r["count"]} for r in rep.get("results", [])}
checks = []
for line in open(res):
    name, status, rc, secs, cmd = line.rstrip("\n").split("\t", 4)
    c = {"name": name, "status": status, "rc": int(rc), "seconds": float(secs), "command": cmd}
    if name.startswith("compare-"):
        m = name[len("compare-"):]
        c["tolerance"] = tols.get(m)
        rep = stdout_json(name)
        if rep:
            c["pass"] = rep.get("pass")
            c["outputs"] = [{"data": r.get("data"), **{k: v for k, v in o.items() if k in ("name", "max_abs_err", "max_rel_err", "cosine", "top1_agreement", "pass")}}
                            for r in rep.get("comparisons", []) for o in r.get("result", {}).get("outputs", [])]
    elif name in ("serve", "serve-iobinding"):
        c["detail"] = load(os.path.join(logs, name + ".json"))
    elif name in ("backends", "device-smoke", "iobinding-compare", "cudagraph-compare"):
        c["detail"] = stdout_json(name)
    checks.append(c)
bench = {"model": "ppocr-cls (x=Nx3x48x192)", "device_name": dev, "cpu": points(load(os.path.join(logs, "bench-cpu.json"))),
         "device": points(load(os.path.join(logs, "bench-device.json")))}
io = {"off": points(load(os.path.join(logs, "iobinding-off.json"))), "on": points(load(os.path.join(logs, "iobinding-on.json")))}
cg = {"off": points(load(os.path.join(logs, "cudagraph-off.json"))), "on": points(load(os.path.join(logs, "cudagraph-on.json")))}
def delta(a, b):
    return {bt: {"p50_off_ms": a[bt]["p50_ms"], "p50_on_ms": b[bt]["p50_ms"],
                 "p50_saved_ms": round(a[bt]["p50_ms"] - b[bt]["p50_ms"], 4)} for bt in a if bt in b}
out_doc = {
    "mode": "cpu-rehearsal" if rehearsal == "1" else "cuda",
    "device": dev,
    "note": ("CPU rehearsal: the same checks with --device cpu; enable_cuda_graph omitted (provider options need a GPU); "
             "nothing here was measured on a GPU") if rehearsal == "1" else "measured on the GPU machine",
    "checks": checks,
    "passed": sum(c["status"] in ("pass", "refused-cleanly") for c in checks),
    "failed": [c["name"] for c in checks if c["status"] not in ("pass", "refused-cleanly")],
    "bench_side_by_side": bench,
    "io_binding": {"points": io, "difference": delta(io["off"], io["on"]),
                   "copies_avoided_per_run": {b: {"host_to_device_bytes": int(b) * 3 * 48 * 192 * 4, "device_to_host_bytes": int(b) * 2 * 4}
                                              for b in io["on"]},
                   "note": "off: ORT copies the input to the device and the output back on every run; on: RunBound reruns the inputs bound in GPU memory, no copy"},
    "cuda_graphs": {"model": os.environ.get("GPU_CHECK_GRAPH_MODEL", "mnist") + " (fixed shape)", "points": cg, "difference": delta(cg["off"], cg["on"])},
    "tensorrt": "not verifiable on that machine: libonnxruntime_providers_tensorrt.so needs libnvinfer.so.10 (absent); the check expects a clean refusal (rc 1)",
}
json.dump(out_doc, open(out, "w"), indent=1)
print(f"gpu-check: {out_doc['passed']}/{len(checks)} checks passed; results in {out}")
if out_doc["failed"]:
    print("gpu-check: not passed: " + ", ".join(out_doc["failed"]))
PY
	say "logs: $OUTDIR/checks.log, $OUTDIR/env.log; results: $OUTDIR/results.json ($(($(date +%s) - T0))s)"
}

status() {
	say "folder: $GPU_DIR"
	[[ -f "$GPU_DIR/parts/MANIFEST" ]] && {
		say "prepared parts:"
		grep -v '^#' "$GPU_DIR/parts/MANIFEST" | sed 's/^/  /'
	}
	staged_report || true
	[[ -f "$GPU_DIR/payload/.verified" ]] && say "payload assembled: $GPU_DIR/payload"
	return 0
}

case "${1:-}" in
prepare) prepare ;;
part) part "${2:-}" ;;
run) run_checks "${2:-}" ;;
status) status ;;
*) usage ;;
esac
