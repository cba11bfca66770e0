# The images: wasmbed-device for the docker backend, wasmbedd for Kubernetes
# (deploy/kubernetes). Included by the top-level Makefile; it uses that
# Makefile's GO and BIN when they are set.
GO     ?= go
BIN    ?= bin
DOCKER ?= docker
IMAGE  ?= wasmbed-device:dev
DAEMON_IMAGE ?= wasmbedd:dev

.PHONY: image

image: ## build static binaries into bin/ and the wasmbed-device (IMAGE) and wasmbedd (DAEMON_IMAGE) images
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ ./cmd/...
	$(DOCKER) build -t $(IMAGE) -f deploy/device/Dockerfile $(BIN)/
	$(DOCKER) build -t $(DAEMON_IMAGE) -f deploy/daemon/Dockerfile $(BIN)/
