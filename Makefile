# optictl: build, fetch ONNX Runtime, test. See README.md.
#
#   make demo   fetch ONNX Runtime, build bin/optictl, run it on a real model
#   make test   fetch ONNX Runtime, run every test (+ a short fuzz run)
#   make cross  CGO_ENABLED=0 optictl for linux/amd64, linux/arm64, linux/arm (v7) in bin/

SHELL := bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

ORT_VERSION := 1.24.1
ORT_LIB := $(CURDIR)/.cache/ort/$(ORT_VERSION)/libonnxruntime.so.$(ORT_VERSION)
export ONNXRUNTIME_SHARED_LIBRARY_PATH ?= $(ORT_LIB)

MODELS := $(abspath $(CURDIR)/../shared/models)
DEMO_MODEL := $(MODELS)/ppocr-cls/model.onnx

TEST_TIMEOUT ?= 20m
FUZZTIME ?= 5m
BENCHTIME ?= 1s

.PHONY: all setup build demo test fuzz vet vet-nocgo cross cross-test fmt bench bench-passes bench-interp clean

all: build

## setup: install the Debian packages the tests need (scripts/setup-deps.sh:
## only what is missing; root or sudo), then fetch ONNX Runtime's shared
## library into .cache/ort (idempotent; skipped when
## ONNXRUNTIME_SHARED_LIBRARY_PATH names another existing library)
setup:
	@scripts/setup-deps.sh
	@if [ "$$ONNXRUNTIME_SHARED_LIBRARY_PATH" != "$(ORT_LIB)" ] && [ -f "$$ONNXRUNTIME_SHARED_LIBRARY_PATH" ]; then \
		echo "setup: using ONNX Runtime from ONNXRUNTIME_SHARED_LIBRARY_PATH=$$ONNXRUNTIME_SHARED_LIBRARY_PATH"; \
	else \
		scripts/fetch-ort.sh; \
	fi

## build: bin/optictl with the version stamped in
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/optictl ./cmd/optictl

## demo: set up, build, and show what optictl does on a real model
demo: setup build
	@test -f "$(DEMO_MODEL)" || { echo "demo: $(DEMO_MODEL) is missing (the shared models sit beside the repository in ../shared/models)" >&2; exit 1; }
	bin/optictl inspect "$(DEMO_MODEL)"
	@mkdir -p out
	bin/optictl optimize "$(DEMO_MODEL)" -o out/demo.opt.onnx --data "$(dir $(DEMO_MODEL))test_data_set_0"
	bin/optictl compare "$(DEMO_MODEL)" out/demo.opt.onnx --backends ort --data "$(dir $(DEMO_MODEL))test_data_set_0"
	@# -O3 for ONNX Runtime's CPU provider, with its NCHWc layout for this CPU (exit 2: a CPU without it)
	@code=0; bin/optictl optimize "$(DEMO_MODEL)" -o out/demo.nchwc.onnx -O3 --target ort-cpu --nchwc auto --data "$(dir $(DEMO_MODEL))test_data_set_0" > out/demo.nchwc.txt || code=$$?; \
	tail -4 out/demo.nchwc.txt; \
	if [ $$code -eq 2 ]; then echo "demo: no NCHWc variant on this CPU"; variants=out/demo.opt.onnx; \
	elif [ $$code -ne 0 ]; then exit $$code; else variants="out/demo.opt.onnx out/demo.nchwc.onnx"; fi; \
	echo bin/optictl bench "$(DEMO_MODEL)" $$variants --backend ort --threads 1 --iterations 300; \
	bin/optictl bench "$(DEMO_MODEL)" $$variants --backend ort --threads 1 --iterations 300 --data "$(dir $(DEMO_MODEL))test_data_set_0"

## test: set up, vet the CGO_ENABLED=0 build, run every test, check the
## linux/arm64 build under qemu, then a short fuzz run of the ONNX loader
test: setup vet-nocgo
	$(GO) test -timeout $(TEST_TIMEOUT) ./...
	scripts/cross-test.sh
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./pkg/serve
	$(GO) test -run='^$$' -fuzz=FuzzLoad -fuzztime=20s ./pkg/graph

## fuzz: a longer fuzz run (FUZZTIME=5m by default)
fuzz: setup
	$(GO) test -run='^$$' -fuzz=FuzzLoad -fuzztime=$(FUZZTIME) ./pkg/graph

## vet: go vet
vet:
	$(GO) vet ./...

## vet-nocgo: go vet of the pure-Go build, so that a cgo-only symbol cannot
## break the edge build (CGO_ENABLED=0) unnoticed; and of optictl for 32-bit
## ARMv7, where an int is 32 bits (a constant like 1<<31 does not compile)
vet-nocgo:
	CGO_ENABLED=0 $(GO) vet ./...
	CGO_ENABLED=0 GOARCH=arm GOARM=7 $(GO) vet ./cmd/optictl

CROSS_TARGETS := linux/amd64 linux/arm64 linux/arm

## cross: static CGO_ENABLED=0 optictl for each of CROSS_TARGETS (linux/arm
## is ARMv7, GOARM=7) in bin/optictl-OS-ARCH; the interp backend only
cross:
	@mkdir -p bin
	@for t in $(CROSS_TARGETS); do \
		os=$${t%/*}; arch=$${t#*/}; \
		echo "CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch$$( [ $$arch = arm ] && echo ' GOARM=7') -> bin/optictl-$$os-$$arch"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOARM=7 $(GO) build -ldflags "$(LDFLAGS)" -o bin/optictl-$$os-$$arch ./cmd/optictl || exit 1; \
	done

## cross-test: the linux/arm64 build's interp tests and a compare of every
## shared model under qemu-aarch64 (scripts/cross-test.sh; a correctness
## check, not a speed figure)
cross-test:
	scripts/cross-test.sh

## fmt: gofmt every Go file in place
fmt:
	gofmt -w $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*')

## bench: the go test benchmarks (BENCHTIME=1s by default)
bench: setup
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) -timeout $(TEST_TIMEOUT) ./pkg/...

## bench-passes: issue 4's ratios, optimized vs original on ONNX Runtime at one
## thread, interleaved (ORT_RATIOS_ONLY=name picks cases, ORT_RATIOS_BUDGET=10s caps each)
bench-passes: setup
	$(GO) test -run='^$$' -bench=ORTRatios -benchtime=300x -timeout $(TEST_TIMEOUT) ./pkg/passes

## bench-interp: the pure-Go backend against ONNX Runtime at one thread, interleaved
bench-interp: setup
	$(GO) test -tags ortbench -run='^$$' -bench='PairORT|NNVersusORT' -benchtime=2000x -timeout $(TEST_TIMEOUT) ./pkg/runtime/interp

## clean: remove build outputs (the ONNX Runtime cache stays; rm -rf .cache to drop it)
clean:
	rm -rf bin out
	$(GO) clean -testcache
