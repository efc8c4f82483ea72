#!/usr/bin/env bash
# fetch-ort.sh: put ONNX Runtime's shared library (Linux x86-64) into the
# git-ignored cache that optictl's "ort" backend searches:
#
#   .cache/ort/<version>/libonnxruntime.so.<version>
#
# The library comes from the npm registry package onnxruntime-node, fetched
# with "npm pack" (a download only: no install script runs). Only
# bin/napi-v6/linux/x64/libonnxruntime.so.1 is extracted, and its sha256 is
# checked against the value pinned below. Running it again when the cached
# library is present and intact does nothing.
#
# Environment:
#   ORT_VERSION       ONNX Runtime version (default 1.24.1; another version
#                     needs ORT_SHA256 too)
#   ORT_SHA256        expected sha256 of libonnxruntime.so.1
#   OPTICTL_ORT_CACHE cache root (default: <repo>/.cache/ort)
#   ORT_NPM_TGZ       use this already-downloaded onnxruntime-node-*.tgz
#                     instead of running npm pack (offline machines)
set -euo pipefail

ORT_VERSION="${ORT_VERSION:-1.24.1}"
PINNED_VERSION="1.24.1"
PINNED_SHA256="53ef1ac028dd1b05554b8da28d9159eb3876f99868193d2aaa6e67f0243c23d4"
if [[ -z "${ORT_SHA256:-}" ]]; then
	if [[ "$ORT_VERSION" != "$PINNED_VERSION" ]]; then
		echo "fetch-ort: ORT_VERSION=$ORT_VERSION has no pinned checksum; set ORT_SHA256 too" >&2
		exit 1
	fi
	ORT_SHA256="$PINNED_SHA256"
fi

case "$(uname -s)/$(uname -m)" in
Linux/x86_64) ;;
*)
	echo "fetch-ort: only Linux x86-64 is fetched automatically (this is $(uname -s)/$(uname -m));" >&2
	echo "fetch-ort: install ONNX Runtime >= 1.24 yourself and set ONNXRUNTIME_SHARED_LIBRARY_PATH" >&2
	exit 1
	;;
esac

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${OPTICTL_ORT_CACHE:-$repo/.cache/ort}"
dest_dir="$cache/$ORT_VERSION"
dest="$dest_dir/libonnxruntime.so.$ORT_VERSION"

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -f "$dest" ]]; then
	if [[ "$(sha256_of "$dest")" == "$ORT_SHA256" ]]; then
		echo "fetch-ort: $dest is present (sha256 ok)"
		exit 0
	fi
	echo "fetch-ort: $dest has the wrong sha256; fetching it again" >&2
	rm -f "$dest"
fi

for tool in tar sha256sum; do
	if ! command -v "$tool" >/dev/null; then
		echo "fetch-ort: $tool is missing (apt-get install -y coreutils tar)" >&2
		exit 1
	fi
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

tgz="${ORT_NPM_TGZ:-}"
if [[ -z "$tgz" ]]; then
	if ! command -v npm >/dev/null; then
		echo "fetch-ort: npm is missing; install it (apt-get install -y nodejs npm), or set" >&2
		echo "fetch-ort: ONNXRUNTIME_SHARED_LIBRARY_PATH to an ONNX Runtime >= 1.24 libonnxruntime.so" >&2
		exit 1
	fi
	echo "fetch-ort: npm pack onnxruntime-node@$ORT_VERSION (about 60 MB, no install scripts run)"
	if ! (cd "$tmp" && npm pack --silent --ignore-scripts "onnxruntime-node@$ORT_VERSION" >"$tmp/pack.out" 2>"$tmp/pack.err"); then
		echo "fetch-ort: npm pack onnxruntime-node@$ORT_VERSION failed:" >&2
		cat "$tmp/pack.err" >&2
		echo "fetch-ort: (offline? download the package elsewhere and set ORT_NPM_TGZ=/path/to/onnxruntime-node-$ORT_VERSION.tgz)" >&2
		exit 1
	fi
	tgz="$tmp/onnxruntime-node-$ORT_VERSION.tgz"
fi
if [[ ! -f "$tgz" ]]; then
	echo "fetch-ort: $tgz does not exist" >&2
	exit 1
fi

member="package/bin/napi-v6/linux/x64/libonnxruntime.so.1"
if ! tar -xzf "$tgz" -C "$tmp" "$member" 2>"$tmp/tar.err"; then
	echo "fetch-ort: $tgz does not hold $member:" >&2
	cat "$tmp/tar.err" >&2
	exit 1
fi
got="$(sha256_of "$tmp/$member")"
if [[ "$got" != "$ORT_SHA256" ]]; then
	echo "fetch-ort: sha256 mismatch for $member of onnxruntime-node@$ORT_VERSION" >&2
	echo "fetch-ort:   want $ORT_SHA256" >&2
	echo "fetch-ort:   got  $got" >&2
	exit 1
fi
mkdir -p "$dest_dir"
# Move into place atomically so a half-written file is never found.
cp "$tmp/$member" "$dest.tmp.$$"
chmod 0644 "$dest.tmp.$$"
mv -f "$dest.tmp.$$" "$dest"
echo "fetch-ort: ONNX Runtime $ORT_VERSION -> $dest"
