# The one test command (README): formatting, vet, then every test with the
# race detector. Run as root so the network-namespace tests run too. One
# package at a time (-p 1): the lab's failover gaps are timing goals, and on
# two cores packages running side by side stretch them.
GO ?= go
PKGS := ./...

.PHONY: test fmt-check vet build fuzz bench

test: fmt-check vet
	$(GO) test -race -p 1 -timeout 45m $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/shim6gw ./cmd/shim6gw

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)
