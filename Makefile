# Wasmbed build entry points. `make help` lists them.
GO        ?= go
BIN       ?= bin
FUZZTIME  ?= 20s
BENCHTIME ?= 1s
DATA      ?= .wasmbed
LOG_LEVEL ?= info
PKGS      := ./...

.DEFAULT_GOAL := help

include deploy/image.mk

# The Kubernetes integration tests run a real kube-apiserver built from the
# module proxy (deploy/kube-testenv). A cold build takes minutes, so the binary
# is kept outside the repository, keyed by version, and reused.
KUBE_VERSION ?= v1.37.2
KUBE_BIN_DIR ?= $(HOME)/.cache/wasmbed/kube-$(KUBE_VERSION)
export WASMBED_KUBE_APISERVER ?= $(KUBE_BIN_DIR)/kube-apiserver

CONTROLLER_GEN ?= $(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0

.PHONY: help build firmware test test-k8s kube-apiserver vet fmt-check run bench bench-daemon bench-fleet soak fuzz apps generate clean

help: ## list targets
	@grep -hE '^[a-z0-9-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

build: ## build every binary into bin/ (and the MCU firmware, when the Arm compiler is there)
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...
	@if command -v arm-none-eabi-gcc >/dev/null; then $(MAKE) --no-print-directory firmware; \
	else echo "no arm-none-eabi-gcc: qemu boards need make firmware (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)"; fi

firmware: ## build the MCU firmware (firmware/mcu) into bin/wasmbed-mcu.elf
	@mkdir -p $(BIN)
	$(MAKE) --no-print-directory -C firmware/mcu BUILD=$(abspath $(BIN))/mcu
	cp $(BIN)/mcu/wasmbed-mcu.elf $(BIN)/wasmbed-mcu.elf

fmt-check: ## fail when any Go file is not gofmt-formatted
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet: ## go vet over everything
	$(GO) vet $(PKGS)

test: fmt-check vet firmware ## formatting, vet, the firmware build and every test under the race detector
	$(GO) test -race -count=1 $(PKGS)

test-k8s: kube-apiserver ## the Kubernetes integration tests against a real kube-apiserver
	$(GO) test -race -count=1 -run 'Kube|Manifests' ./daemon/...

kube-apiserver: $(WASMBED_KUBE_APISERVER) ## build (once) the kube-apiserver the Kubernetes tests run

$(WASMBED_KUBE_APISERVER):
	@mkdir -p $(dir $@)
	cd deploy/kube-testenv && $(GO) build -trimpath -o $@.tmp \
	  -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION) \
	    -X k8s.io/component-base/version.gitMajor=$(word 2,$(subst ., ,$(subst v,v ,$(KUBE_VERSION)))) \
	    -X k8s.io/component-base/version.gitMinor=$(word 2,$(subst ., ,$(KUBE_VERSION)))" \
	  k8s.io/kubernetes/cmd/kube-apiserver
	mv $@.tmp $@

# The daemon's API, where make run's console looks for it too
# (WASMBED_API_LISTEN moves both).
API_LISTEN ?= $(or $(WASMBED_API_LISTEN),127.0.0.1:3001)
API_URL := http://$(if $(filter :%,$(API_LISTEN)),127.0.0.1$(API_LISTEN),$(API_LISTEN))

run: build ## run the system: daemon, emulated devices (and a QEMU microcontroller), sample app; in a terminal, with the console
	@mkdir -p $(DATA)
	@if [ -t 0 ] && [ -t 1 ]; then \
	  echo "starting wasmbedd (logs in $(DATA)/wasmbedd.log); quitting the console (q) stops it"; \
	  $(BIN)/wasmbedd --demo --data-dir $(DATA) --api-listen $(API_LISTEN) --log-level $(LOG_LEVEL) 2>>$(DATA)/wasmbedd.log & pid=$$!; \
	  trap 'kill $$pid 2>/dev/null; wait $$pid' EXIT INT TERM; \
	  $(BIN)/wasmbed-tui --daemon $(API_URL); \
	else \
	  echo "wasmbedd: API on $(API_URL) (try: curl -s $(API_URL)/api/v1/devices), data in $(DATA)"; \
	  exec $(BIN)/wasmbedd --demo --data-dir $(DATA) --api-listen $(API_LISTEN) --log-level $(LOG_LEVEL); \
	fi

HEAVY_BENCH := Rollout|RSS|APILatency

bench: ## benchmarks but the daemon load harness; figures go to docs/benchmarks.md
	$(GO) test -run '^$$' -bench . -skip '$(HEAVY_BENCH)' -benchmem -benchtime $(BENCHTIME) ./...

bench-daemon: ## the daemon load harness: rollout to 100/1000 devices, RSS, API latency (minutes)
	$(GO) test -run '^$$' -bench 'Rollout|RSS' -benchtime 1x -timeout 30m ./daemon/
	$(GO) test -run '^$$' -bench 'APILatency' -benchtime 20000x -timeout 30m ./daemon/

FLEET_SIZES ?= 1000,10000
FLEET_RUNS  ?= 3

bench-fleet: build ## the fleet benchmarks: wasmbedd, simulated devices in processes of their own, and mosquitto beside (minutes)
	@command -v mosquitto >/dev/null || test -x /usr/sbin/mosquitto || { echo "the comparison needs mosquitto: apt-get install mosquitto"; exit 1; }
	$(BIN)/wasmbed-loadgen bench --wasmbedd $(BIN)/wasmbedd --sizes $(FLEET_SIZES) --runs $(FLEET_RUNS)

SOAK_TIME ?= 30m

soak: build ## 1,000 devices held among hostile clients while rollouts run, for SOAK_TIME; fds and RSS over time
	$(BIN)/wasmbed-loadgen soak --wasmbedd $(BIN)/wasmbedd --devices 1000 --duration $(SOAK_TIME)

fuzz: ## run every fuzz target for FUZZTIME each
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

apps: ## rebuild the sample WebAssembly apps in testdata/apps
	$(MAKE) -B -C testdata/apps

generate: ## regenerate the resource types' deep-copy methods and CRD manifests
	$(CONTROLLER_GEN) object paths=./crds/...
	$(CONTROLLER_GEN) crd paths=./crds/... output:crd:dir=./crds

clean: ## remove build output
	rm -rf $(BIN)
