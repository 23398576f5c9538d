# CodeVector API keys. `make help` lists the targets.

K8S_VERSION ?= $(shell cat internal/k8sversion/version.txt)
CONTROLLER_TOOLS_VERSION ?= v0.23.0

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
ENVTEST_ASSETS ?= $(LOCALBIN)/k8s/$(K8S_VERSION)-linux-amd64
export KUBEBUILDER_ASSETS ?= $(ENVTEST_ASSETS)

# Tests and builds fetch modules through the module proxy as needed.
export GOFLAGS := $(GOFLAGS) -mod=mod
GO_TEST_FLAGS ?= -count=1 -timeout 40m

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate the CRD and RBAC manifests from the Go markers.
	$(CONTROLLER_GEN) rbac:roleName=codevector-manager crd:allowDangerousTypes=false paths="./api/..." paths="./controllers/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac/manager
	@$(MAKE) --no-print-directory chart-files

# The Helm chart carries verbatim copies of what config/ generates or holds
# once: the CRD (Helm installs crds/ as they are), the admission policies
# and the manager's generated ClusterRole. config/chart_test.go fails when
# they differ.
CHART ?= charts/codevector
.PHONY: chart-files
chart-files: ## Copy the CRD, the admission policies and the manager's ClusterRole from config/ into the Helm chart.
	rm -f $(CHART)/crds/*.yaml $(CHART)/files/policies/*.yaml
	cp config/crd/bases/*.yaml $(CHART)/crds/
	cp config/policies/*.yaml $(CHART)/files/policies/ && rm $(CHART)/files/policies/kustomization.yaml
	cp config/rbac/manager/role.yaml $(CHART)/files/rbac/manager-role.yaml
	cp config/monitoring/prometheusrule.yaml $(CHART)/files/monitoring/prometheusrule.yaml
	cp config/monitoring/codevector-dashboard.json $(CHART)/files/monitoring/codevector-dashboard.json

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: proto
proto: ## Generate the peer services' Go code from proto/ (buf and the protoc-gen-go plugins, built from source; the first run compiles buf, minutes).
	go run github.com/bufbuild/buf/cmd/buf@v1.75.0 generate

.PHONY: verify-generated
verify-generated: manifests generate proto ## Fail when generated files are not what the markers and proto/ produce.
	@git diff --exit-code -- api config/crd config/rbac/manager $(CHART)/crds $(CHART)/files || { echo "generated files are stale: run 'make manifests generate' and commit the result" >&2; exit 1; }
	@git diff --exit-code -- '*.pb.go' && test -z "$$(git ls-files --others --exclude-standard -- '*.pb.go')" || { echo "the peer services' generated code is stale or not committed: run 'make proto' and commit the result" >&2; git ls-files --others --exclude-standard -- '*.pb.go' >&2; exit 1; }

.PHONY: docs
docs: ## Rewrite docs/flags.md from the commands' flags (a test fails when it is stale).
	go test -count=1 -run '^TestFlagReferenceIsCurrent$$' ./internal/commands/ -args -update-flag-reference

.PHONY: fmt
fmt: ## Run go fmt.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

# ./chaos runs last and alone, so that no other package's load is in its
# timings: the checker's tests, then TestChaos's 2-minute run (its defaults).
.PHONY: test
test: envtest test-deps verify-generated vet ## Run all tests against a real kube-apiserver and etcd, and a 2-minute chaos run.
	go test $(GO_TEST_FLAGS) $$(go list ./... | grep -v '/chaos$$')
	@$(MAKE) --no-print-directory test-chart-tools
	go test $(GO_TEST_FLAGS) -v ./chaos/

# The chaos run of make test (TestChaos's defaults): 2 minutes at a rate a
# loaded two-core machine sends (about 4 minutes in all, with start-up and
# the checks).
.PHONY: chaos-short
chaos-short: ## make chaos for 2 minutes at 100 requests a second over 80 keys, as make test runs it.
	@$(MAKE) --no-print-directory chaos CHAOS_DURATION=2m CHAOS_RATE=100 CHAOS_KEYS=80

# hack/chart-tools is a module of its own (Helm's and Prometheus's packages
# stay out of the product's go.mod): helm lint --strict, the values schema,
# the alert rules' unit tests and the metric names the dashboard queries.
# config/chart_test.go, in the main module, builds its template command.
.PHONY: test-chart-tools
test-chart-tools: ## Run the chart and monitoring tests of hack/chart-tools.
	GOWORK=off go -C hack/chart-tools vet ./...
	GOWORK=off go -C hack/chart-tools test $(GO_TEST_FLAGS) ./...

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 60s); a crash is saved under testdata/fuzz.
	go test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$${FUZZTIME:-60s} ./keys/
	go test -run='^$$' -fuzz='^FuzzParsePHC$$' -fuzztime=$${FUZZTIME:-60s} ./keys/
	go test -run='^$$' -fuzz='^FuzzExtractKey$$' -fuzztime=$${FUZZTIME:-60s} ./gateway/auth/
	go test -run='^$$' -fuzz='^FuzzParseProviders$$' -fuzztime=$${FUZZTIME:-60s} ./gateway/providers/
	go test -run='^$$' -fuzz='^FuzzDecodeRevalidates$$' -fuzztime=$${FUZZTIME:-60s} ./gateway/providers/
	go test -run='^$$' -fuzz='^FuzzUsageScanner$$' -fuzztime=$${FUZZTIME:-60s} ./gateway/metering/
	go test -run='^$$' -fuzz='^FuzzReservation$$' -fuzztime=$${FUZZTIME:-60s} ./gateway/policy/
	go test -run='^$$' -fuzz='^FuzzOpen$$' -fuzztime=$${FUZZTIME:-60s} ./gateway/console/sealedcookie/
	go test -run='^$$' -fuzz='^FuzzDecodeProtobufListFacts$$' -fuzztime=$${FUZZTIME:-60s} ./gateway/keyindex/
	go test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$${FUZZTIME:-60s} ./gateway/peerproofs/

# CHAOS_DURATION, CHAOS_RATE (req/s), CHAOS_KEYS, CHAOS_SEED and CHAOS_PEERS
# (static or kubernetes; unset, the seed picks) shape the chaos run; the test's timeout is its duration plus room to start the
# control plane, issue the keys and check the history.
CHAOS_DURATION ?= 10m
CHAOS_RATE ?= 300
CHAOS_KEYS ?= 200
CHAOS_TIMEOUT ?= $(shell echo $(CHAOS_DURATION) | awk '{ d = $$1; m = (d ~ /m$$/) ? d + 0 : (d ~ /s$$/ ? int(d / 60) : 60); print m + 15 "m" }')

.PHONY: chaos
chaos: envtest ## Run the system under load while killing, stopping and cutting off its parts, then check the history against the promises (CHAOS_DURATION=10m, CHAOS_RATE=300, CHAOS_KEYS=200, CHAOS_SEED to replay; docs/reliability.md).
	CHAOS_DURATION=$(CHAOS_DURATION) CHAOS_RATE=$(CHAOS_RATE) CHAOS_KEYS=$(CHAOS_KEYS) CHAOS_SEED=$(CHAOS_SEED) CHAOS_PEERS=$(CHAOS_PEERS) \
		go test -count=1 -v -run '^TestChaos$$' -timeout $(CHAOS_TIMEOUT) ./chaos/

.PHONY: bench
bench: envtest ## Run the benchmarks recorded in docs/benchmarks.md (about 15 minutes; tables also in bin/bench-results.md).
	BENCH_OUT=$(LOCALBIN)/bench-results.md go test -run='^$$' -bench=. -benchtime=1x -timeout 60m ./bench/

.PHONY: bench-policy
bench-policy: envtest ## Only the per-key policy benchmarks (issue 13): accuracy, cost, a replica stopped; about 7 minutes.
	BENCH_OUT=$(LOCALBIN)/bench-policy-results.md go test -run='^$$' -bench='^BenchmarkPolicy' -benchtime=1x -timeout 60m ./bench/

.PHONY: bench-rollout
bench-rollout: envtest ## Only the rollout benchmark (issue 15): 3 replicas replaced one at a time under 10,000 keys in use, before and after proof sharing (BENCH_ROLLOUT_KEYS=3000: 8 minutes on a loaded machine).
	BENCH_OUT=$(LOCALBIN)/bench-rollout-results.md go test -run='^$$' -bench='^BenchmarkRollout$$' -benchtime=1x -timeout 60m ./bench/

.PHONY: bench-scale
bench-scale: envtest ## Scale benchmarks: 10k and 100k keys (SCALE_KEYS), gateway and manager; about 30 minutes.
	go test -v -run='^$$' -bench=. -benchtime=1x -timeout 120m ./bench/scale/

##@ Build

# What `codevector version` prints: the tag (else "dev") and the commit.
VERSION ?= $(shell git describe --tags --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS ?= -X github.com/codevector/codevector/internal/commands.version=$(VERSION) \
	-X github.com/codevector/codevector/internal/commands.commit=$(COMMIT)

.PHONY: build
build: ## Build bin/codevector, and bin/kubectl-apikey and bin/kubectl_complete-apikey (the kubectl plugin and its shell completion: links to it).
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o $(LOCALBIN)/codevector .
	ln -sf codevector $(LOCALBIN)/kubectl-apikey
	ln -sf codevector $(LOCALBIN)/kubectl_complete-apikey

# DEV_FLAGS are passed to `codevector dev`, e.g. DEV_FLAGS='--listen localhost:8081'.
DEV_FLAGS ?=

.PHONY: dev
dev: envtest build ## Run everything on this machine (control plane, manager, gateway, console); Ctrl-C stops it.
	$(LOCALBIN)/codevector dev $(DEV_FLAGS)

.PHONY: run
run: manifests generate ## Run the manager against the cluster in KUBECONFIG.
	go run . manager

##@ Dependencies

.PHONY: envtest
envtest: ## Build kube-apiserver and etcd (once) into bin/k8s/$(K8S_VERSION)-linux-amd64.
	@K8S_VERSION=$(K8S_VERSION) hack/envtest-build.sh

.PHONY: test-deps
test-deps: ## Install kubectl, chromium and bash-completion with apt-get when they are missing.
	@hack/install-test-deps.sh

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Install controller-gen into bin/.
$(CONTROLLER_GEN):
	GOBIN=$(LOCALBIN)/.controller-gen-tmp go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/.controller-gen-tmp/controller-gen $@ && rmdir $(LOCALBIN)/.controller-gen-tmp
