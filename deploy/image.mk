# The wasmbed-device image for the docker backend. Included by the top-level
# Makefile; it uses that Makefile's GO and BIN when they are set.
GO     ?= go
BIN    ?= bin
DOCKER ?= docker
IMAGE  ?= wasmbed-device:dev

.PHONY: image

image: ## build static binaries into bin/ and the wasmbed-device image (IMAGE) from them
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ ./cmd/...
	$(DOCKER) build -t $(IMAGE) -f deploy/device/Dockerfile $(BIN)/
