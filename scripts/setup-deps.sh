#!/usr/bin/env bash
# setup-deps.sh: install the Debian packages and the locale that optictl's
# demo and tests need, so that `make demo` and `make test` work on a fresh
# Debian machine with only Go on it. Idempotent: it installs only what is
# missing, and does nothing at all when everything is there.
#
# Needs root or sudo to install. Without either it prints the exact command
# to run and exits 1 under CI=true (and 0 otherwise, after the warning, so a
# developer can still run the tests that need nothing extra).
#
# Packages (why):
#   nodejs npm          scripts/fetch-ort.sh fetches ONNX Runtime from the npm registry
#   make gcc libc6-dev  the build, and cgo for the ONNX Runtime backend
#   git ca-certificates version stamping; TLS to the package registries
#   redis-server        the serve cache tests run a real Redis
#   libonnx-testdata    ONNX 1.12's conformance data (tests read it from /usr/share)
#   locales             ONNX Runtime's StringNormalizer needs en_US.UTF-8
#   qemu-user           runs the linux/arm64 build's tests (make cross-test)
#   verilator yosys     the FPGA backend: RTL simulation and synthesis
#   nextpnr-ice40 fpga-icestorm iverilog   place and route for iCE40; a second simulator
#   $OPTICTL_EXTRA_DEBS anything a caller adds
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

# pkg:command pairs; a command of "-" means "check with dpkg".
wanted=(
	"nodejs:node" "npm:npm" "make:make" "gcc:gcc" "libc6-dev:-" "git:git"
	"ca-certificates:-" "redis-server:redis-server" "libonnx-testdata:-"
	"locales:-" "qemu-user:qemu-aarch64" "verilator:verilator" "yosys:yosys"
	"nextpnr-ice40:nextpnr-ice40" "fpga-icestorm:icepack" "iverilog:iverilog"
)
for p in ${OPTICTL_EXTRA_DEBS:-}; do wanted+=("$p:-"); done

need=()
for pc in "${wanted[@]}"; do
	pkg=${pc%%:*} cmd=${pc#*:}
	if [[ $cmd != "-" ]]; then
		command -v "$cmd" >/dev/null 2>&1 && continue
	fi
	dpkg -s "$pkg" >/dev/null 2>&1 && [[ $cmd == "-" ]] && continue
	need+=("$pkg")
done

locale_ok() { locale -a 2>/dev/null | grep -qi '^en_US\.utf-\?8$'; }

if ((${#need[@]} == 0)) && locale_ok; then
	exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		sudo="sudo"
	else
		echo "setup-deps: missing: ${need[*]:-} $(locale_ok || echo 'the en_US.UTF-8 locale')" >&2
		echo "setup-deps: run as root:" >&2
		echo "  apt-get update && apt-get install -y --no-install-recommends ${need[*]:-locales}" >&2
		echo "  sed -i 's/^# *\\(en_US\\.UTF-8 UTF-8\\)/\\1/' /etc/locale.gen && locale-gen" >&2
		if [[ ${CI:-} == true ]]; then exit 1; fi
		exit 0
	fi
fi

if ((${#need[@]})); then
	echo "setup-deps: installing ${need[*]}"
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

if ! locale_ok; then
	echo "setup-deps: generating the en_US.UTF-8 locale"
	if [[ -f /etc/locale.gen ]]; then
		$sudo sed -i 's/^# *\(en_US\.UTF-8 UTF-8\)/\1/' /etc/locale.gen
	fi
	grep -qs '^en_US.UTF-8 UTF-8' /etc/locale.gen || echo 'en_US.UTF-8 UTF-8' | $sudo tee -a /etc/locale.gen >/dev/null
	$sudo locale-gen >/dev/null
fi
