# handoff — reliable API integrations on Temporal.
#
#   make run    the whole system locally (Temporal dev server, worker, API, sandbox)
#   make test   every test: unit, integration (real dev server), replay
#   make lint   go vet, staticcheck, workflowcheck

GO ?= go
BIN := $(CURDIR)/bin

# The pinned engine: Temporal CLI v1.5.1 = server 1.29.1 + Web UI 2.42.1,
# built from the Go module proxy. Nothing downloads a prebuilt binary.
TEMPORAL_CLI_VERSION := v1.5.1
TEMPORAL_SERVER_VERSION := 1.29.1

# A real Temporal cluster (make cluster, the scale-out tests): the server
# and its SQL schema tool at the same server version, and the Web UI server
# at the CLI's UI version, built from the Go module proxy too.
TEMPORAL_UI_VERSION := 2.42.1

# stripe-mock validates the Stripe adapter's requests against Stripe's OpenAPI spec.
STRIPE_MOCK_VERSION := v0.203.0

# Mailpit is the real SMTP server the SMTP mail provider is tested against.
MAILPIT_VERSION := v1.33.1

# kustomize renders the Kubernetes manifests for the lint check.
KUSTOMIZE_VERSION := v5.8.2

STATICCHECK_VERSION := v0.8.2
WORKFLOWCHECK_VERSION := v0.6.0

.PHONY: replay-live run cluster cluster-bins deploy-check test lint monitoring debian-packages docs apiclient build temporal histories bench bench-webhooks bench-reconcile fuzz clean

run: build temporal
	./bin/handoff dev

build:
	$(GO) build -o bin/handoff ./cmd/handoff

# Replay what a running system holds (make run's, or the cluster of
# HANDOFF_TEMPORAL_ADDRESS) against this tree's workflows before releasing
# it: the running workflows and the most recently closed of every type (see
# README, "Replay before a release"). REPLAY_FLAGS passes options, such as
# --open 50 --closed 500 or -o json. make run's payload keys are read from
# .data/dev-credentials.env when it is there.
replay-live: build
	@set -a; if [ -f .data/dev-credentials.env ] && [ -z "$$HANDOFF_PAYLOAD_KEYS" ]; then . ./.data/dev-credentials.env; fi; set +a; \
	./bin/handoff replay --from-temporal $(REPLAY_FLAGS)

# Built only when bin/temporal is missing or reports another server version.
temporal:
	@mkdir -p bin
	@if ./bin/temporal --version 2>/dev/null | grep -q "Server $(TEMPORAL_SERVER_VERSION)"; then \
		echo "bin/temporal: server $(TEMPORAL_SERVER_VERSION) present"; \
	else \
		echo "building the Temporal CLI $(TEMPORAL_CLI_VERSION) into bin/ (about 5 minutes the first time)"; \
		GOBIN=$(BIN) $(GO) install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_CLI_VERSION); \
	fi
	@./bin/temporal --version | grep -q "Server $(TEMPORAL_SERVER_VERSION)" || \
		{ echo "bin/temporal does not report server $(TEMPORAL_SERVER_VERSION)"; exit 1; }

# The cluster tests and the benchmark's test run after the rest, one after
# the other, not beside them: their Temporal and handoff processes would
# starve the other tests' dev servers on two cores. In ./tests, the tests
# that run a system of their own run four at a time (-parallel 4), after
# the tests of the shared system: most of their time is spent waiting.
SEPARATE_TESTS := /tests/cluster$$|/internal/bench$$
test: temporal cluster-bins bin/stripe-mock bin/mailpit lint monitoring
	$(GO) test -race -count=1 -timeout 25m -parallel 4 $$($(GO) list ./... | grep -Ev '$(SEPARATE_TESTS)')
	$(GO) test -race -count=1 -timeout 15m -p 1 ./tests/cluster ./internal/bench

# Debian packages the checks use: promtool (package prometheus) for the
# alert rules, docker-compose to validate the compose file, chromium for
# the operations page's browser test, PostgreSQL 15 for the cluster tests.
# Installed when missing and this is root on Debian (as in CI); elsewhere
# their checks say they are skipped.
DEBIAN_PACKAGES := prometheus:promtool docker-compose:docker-compose chromium:chromium \
	postgresql-15:/usr/lib/postgresql/15/bin/postgres
debian-packages:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
		command -v "$${p#*:}" >/dev/null 2>&1 || missing="$$missing $${p%%:*}"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $$missing >/dev/null || exit 1; \
	else \
		echo "NOTE: missing Debian packages:$$missing — their checks are SKIPPED (install: sudo apt-get install$$missing)"; \
	fi

# The alert rules and their unit tests, and the Prometheus configuration.
monitoring: debian-packages
	@if command -v promtool >/dev/null 2>&1; then \
		promtool check config monitoring/prometheus.yml && promtool test rules monitoring/alerts_test.yml; \
	else echo "SKIPPED: promtool checks (Debian package prometheus is not installed)"; fi

# Each built only when missing or of another version (about 6 minutes for
# the three the first time; they share most of their modules).
cluster-bins: build
	@mkdir -p bin/.build
	@$(call pinned,temporal-server,go.temporal.io/server/cmd/server@v$(TEMPORAL_SERVER_VERSION),server,temporal version $(TEMPORAL_SERVER_VERSION))
	@$(call pinned,temporal-sql-tool,go.temporal.io/server/cmd/tools/sql@v$(TEMPORAL_SERVER_VERSION),sql,temporal-sql-tool version $(TEMPORAL_SERVER_VERSION))
	@$(call pinned,temporal-ui-server,github.com/temporalio/ui-server/v2/cmd/server@v$(TEMPORAL_UI_VERSION),server,Temporal UI version $(TEMPORAL_UI_VERSION))

# pinned(name, package@version, built name, what it prints of its version[,
# the argument that asks, default --version])
pinned = if ./bin/$(1) $(or $(5),--version) 2>/dev/null | grep -q "$(4)"; then echo "bin/$(1): $(4) present"; else \
	echo "building bin/$(1) from $(2)"; \
	GOBIN=$(BIN)/.build $(GO) install $(2) && mv bin/.build/$(3) bin/$(1); fi

# A Temporal cluster on PostgreSQL (each service its own process), the Web
# UI, the sandbox, two API instances behind a failover balancer and two
# workers; state in .cluster/. Ctrl-C stops it all.
cluster: build cluster-bins debian-packages
	$(GO) run ./cmd/handoff-cluster

bin/stripe-mock:
	GOBIN=$(BIN) $(GO) install github.com/stripe/stripe-mock@$(STRIPE_MOCK_VERSION)

bin/mailpit:
	GOBIN=$(BIN) $(GO) install github.com/axllent/mailpit@$(MAILPIT_VERSION)

# The deployment files: the compose file (docker-compose config), and the
# Kubernetes manifests rendered by kustomize and decoded strictly into the
# Kubernetes API types with handoff's own rules (tools/k8s-validate).
# A worker stops its four provider queues one after another, up to 30 s
# each: Kubernetes must wait longer before it kills it.
K8S_RULES := -min-worker-grace=121
deploy-check: debian-packages
	@$(call pinned,kustomize,sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION),kustomize,$(KUSTOMIZE_VERSION),version)
	@if command -v docker-compose >/dev/null 2>&1; then \
		docker-compose -f docker/docker-compose.yml config -q && echo "docker/docker-compose.yml: valid"; \
	else echo "SKIPPED: compose file check (Debian package docker-compose is not installed)"; fi
	@mkdir -p bin/.build
	@./bin/kustomize build deploy/kubernetes > bin/.build/k8s-base.yaml
	@./bin/kustomize build deploy/overlays/dev > bin/.build/k8s-dev.yaml
	@cd tools/k8s-validate && $(GO) build -o $(BIN)/.build/k8s-validate .
	@printf 'deploy/kubernetes: ' && ./bin/.build/k8s-validate $(K8S_RULES) -allow-missing-secret=handoff-secrets bin/.build/k8s-base.yaml
	@printf 'deploy/overlays/dev: ' && ./bin/.build/k8s-validate $(K8S_RULES) bin/.build/k8s-dev.yaml
	@printf 'deploy/kubernetes/secret.example.yaml: ' && ./bin/.build/k8s-validate deploy/kubernetes/secret.example.yaml

bin/staticcheck:
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

bin/workflowcheck:
	GOBIN=$(BIN) $(GO) install go.temporal.io/sdk/contrib/tools/workflowcheck@$(WORKFLOWCHECK_VERSION)

lint: bin/staticcheck bin/workflowcheck deploy-check
	@test -z "$$(gofmt -l .)" || { echo "not gofmt-ed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	./bin/staticcheck ./...
	./bin/workflowcheck ./...
	$(GO) run ./openapi/lint
	@tmp=$$(mktemp -d) && sed 's|^output: .*|output: '"$$tmp"'/api.gen.go|' apiclient/oapi-codegen.yaml > $$tmp/config.yaml && \
		$(GO) run $(OAPI_CODEGEN) -config $$tmp/config.yaml openapi/openapi.yaml && \
		{ diff -q $$tmp/api.gen.go apiclient/api.gen.go >/dev/null || { echo "apiclient/api.gen.go is not current: run make apiclient"; rm -rf $$tmp; exit 1; }; }; \
		rm -rf $$tmp
	@env -u HANDOFF_CONTRACTS_DIR $(GO) run ./cmd/handoff contracts | diff -u docs/contracts.md - >/dev/null || \
		{ echo "docs/contracts.md is not current: run make docs"; exit 1; }

# docs/contracts.md renders the built-in contracts for reviewers.
# The API's Go client, generated from its description.
OAPI_CODEGEN := github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2
apiclient:
	$(GO) run $(OAPI_CODEGEN) -config apiclient/oapi-codegen.yaml openapi/openapi.yaml

docs:
	@mkdir -p docs
	env -u HANDOFF_CONTRACTS_DIR $(GO) run ./cmd/handoff contracts > docs/contracts.md

# Re-record the committed workflow histories from fresh runs of the tests
# that record them (see README, "Replay tests"). Histories of earlier
# workflow versions (*_v0_*, *_v1.json, *_v2_text.json) are kept as they are.
HISTORY_TESTS := TestRecordHistories|TestRecordCustomerHistories|TestReconciliationRepairsWhatIsSafeAndFlagsTheRest|TestPausedProviderGetsNoCallsAndDrainsOnResume
histories: temporal bin/stripe-mock bin/mailpit
	$(GO) test -count=1 ./tests/ -run '$(HISTORY_TESTS)' -update

# handoff against the same order on Temporal alone, side by side on one dev
# server: throughput, latency, CPU, history, webhook intake and reads (see
# README, "Performance"). BENCH_FLAGS passes options, e.g. -memory, -rounds 5,
# -env HANDOFF_WORKER_WORKFLOW_POLLERS=8, -only webhooks; `./bin/handoff-bench -h`
# lists them.
bench: build temporal
	$(GO) build -o bin/handoff-bench ./cmd/handoff-bench
	./bin/handoff-bench $(BENCH_FLAGS)

# Webhook acknowledgement latency with the payments provider answering at
# once and at 2 s per call, side by side (see README, "Webhooks").
bench-webhooks: temporal bin/stripe-mock
	$(GO) test -count=1 ./tests/ -run 'TestWebhookAckLatencyDoesNotDependOnProviderLatency' -v | grep -E 'acknowledgement|^(ok|FAIL|---)'

# Reconciliation of 10 000 and 100 000 orders: records per second and the
# worker's peak heap for each (see README, "Reconciliation").
bench-reconcile: temporal
	$(GO) test -count=1 ./tests/ -run 'TestReconciliationMemoryIsBoundedByThePage' -v -timeout 20m | grep -E 'reconciliation, worker|^(ok|FAIL|---)'

# A short run of every webhook fuzz target (go test -fuzz takes one at a time).
fuzz:
	for f in FuzzVerifyStandard FuzzVerifyStripe FuzzDecodeStandard FuzzDecodeStripe; do \
		$(GO) test ./webhooks -run '^$$' -fuzz "^$$f$$" -fuzztime 20s || exit 1; \
	done

clean:
	rm -rf bin/handoff
