#!/bin/sh
# serve-probe.sh: repeat issue 18's hostile-client probes against a real
# `optictl serve` on loopback (malformed flood, slow connections, SIGTERM
# under load) and print the figures: peak RSS vs idle, valid-request p99
# during the flood, slow connections that still leave valid requests
# served, requests lost on SIGTERM. About a minute; needs ~1 GB free.
# Usage: scripts/serve-probe.sh [report.json]
set -eu
cd "$(dirname "$0")/.."
out=${1:-}
bin=$(mktemp -d)/optictl
go build -o "$bin" ./cmd/optictl
OPTICTL_BIN="$bin" OPTICTL_PROBE_OUT="$out" go test -tags serveprobe -run '^TestServeProbe$' -count=1 -timeout 10m -v ./pkg/serve
