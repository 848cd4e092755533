# Streamline build entry points. Every target works from a fresh clone:
# Go modules download on first use; `make tools` installs the pinned
# code generators into $(GOBIN) (default ~/go/bin).

GO       ?= go
GOBIN    ?= $(shell $(GO) env GOPATH)/bin
PKGS     := ./proto/... ./shared/... ./gateway/... ./logsvc/... ./uploader/... ./services/...
# Packages whose tests also run under the race detector. The services
# end-to-end tests run without it: they drive whole processes and the race
# build of embedded etcd doubles their time on two cores.
RACE_PKGS := ./shared/... ./gateway/... ./logsvc/... ./uploader/...
BUF_VERSION              := v1.75.0
PROTOC_GEN_GO_VERSION    := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
# S3-protocol server for the objstore tests (Apache-2.0; posix backend).
VERSITYGW_VERSION        := v1.8.0
# gRPC command-line client; the admin API tests run the real binary.
GRPCURL_VERSION          := v1.9.4
BINARIES := streamline=./services/cmd/streamline gateway=./gateway/cmd/gateway \
            logsvc=./logsvc/cmd/logsvc uploader=./uploader/cmd/uploader \
            streamline-bench=./services/cmd/streamline-bench \
            streamline-etcd=./services/cmd/streamline-etcd \
            streamline-cli=./services/cmd/streamline-cli

# The seeded fault campaign (package services/chaos): DURATION of faults,
# SEED replays a schedule (default: a new one, printed), REPORT names a
# file for the JSON report, LOGS a directory for the processes' logs.
# `make test` runs a short campaign.
DURATION ?= 2m
SEED     ?=
REPORT   ?=
LOGS     ?=
# `make test` replays one fixed schedule (a regression check whose faults
# are known); `make chaos` without SEED explores a new one each run.
TEST_CHAOS_SEED ?= 11
# Every services package but the campaign, which `make test` runs on its own.
SERVICES_TEST_PKGS = $(shell $(GO) list ./services/... | grep -v /services/chaos)

.PHONY: bench all build test test-race test-e2e generate lint tools run clean chaos txn-etl

all: build

## build: static binaries in ./bin
build:
	@mkdir -p bin
	@for b in $(BINARIES); do name=$${b%%=*}; pkg=$${b#*=}; \
		echo "go build -o bin/$$name $$pkg"; \
		CGO_ENABLED=0 $(GO) build -o bin/$$name $$pkg || exit 1; done

## test: every test in every module, franz-go's TestTxnEtl against the
## all-in-one (txn-etl), then a 2-minute fault campaign (what CI runs)
test: tools
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 15m $(RACE_PKGS)
	$(GO) test -count=1 -timeout 20m ./proto/... $(SERVICES_TEST_PKGS)
	$(MAKE) txn-etl
	$(MAKE) chaos DURATION=2m SEED=$(TEST_CHAOS_SEED)

## chaos: the seeded fault campaign, e.g. make chaos DURATION=30m SEED=42
chaos: tools
	CHAOS_DURATION=$(DURATION) CHAOS_SEED=$(SEED) CHAOS_REPORT=$(REPORT) CHAOS_LOGS=$(LOGS) \
		$(GO) test -count=1 -v -timeout 0 ./services/chaos/

## bench: the benchmark table (Markdown) of the all-in-one, rate-limited so
## latencies are below saturation: local, hybrid and diskless each also in
## transactions (a transactional producer committing every 100 records,
## read_committed consumer), hybrid (uploading and deleting
## local segments during the run), local against hybrid at 10k records/s on
## one server, diskless, and diskless while the merger rewrites its ranges
## (merge age 2 s: merging runs through the load), replication: RF=1
## against RF=3 (acks=all) on 3 log-service nodes, franz-go's in-memory
## kfake broker as a reference, and diskless behind the S3 Standard and S3
## Express latency models (Express also with --diskless-eager-flush; the
## S3 rows count their PUTs); then throughput at unlimited rate with one load
## for kfake, local, diskless (directory store) and diskless behind the S3
## Express model (local also with --loopback-grpc: the services of the
## all-in-one over loopback gRPC instead of in-process), and a diskless
## topic read from its start after the fact (catching up, behind both S3
## models). The rows are printed and written with their
## latency CDFs to $(BENCH_DIR) (emptied first): results.md (the table) and
## latency-cdf.png (produce and end-to-end latency CDF of every row)
BENCH_DIR     ?= bench-results/latest
BENCH_RECORDS ?= 60000
BENCH_RATE    ?= 2000
BENCH_ARGS     = --target streamline --partitions 12 --records $(BENCH_RECORDS) --rate $(BENCH_RATE) --record-bytes 1024 --diskless-batch-timeout 20ms
# hybrid: segments small enough to roll (and upload) every second or so at
# these rates, and a local retention the runs exceed, so the measurement
# includes uploads and local deletes
HYBRID_ARGS    = --segment-bytes 1MiB --local-retention-bytes 4MiB
# replication: the same 3-node process (the all-in-one plus two log-service
# nodes on its etcd), RF=1 against RF=3 with acks=all
RF_ARGS        = --target streamline --partitions 12 --records 200000 --record-bytes 1024 --storage-mode local --logsvc-nodes 3
# throughput: every target at unlimited rate with the same load (6
# partitions, 500,000 x 1 KiB, produce and consume), between two kfake
# runs (kfake's own rate varies by up to 2x from run to run here), so the
# throughput targets compare within one run
TPUT_ARGS      = --partitions 6 --records 500000 --record-bytes 1024 --rate 0
# after heavy load: before the measured 10k rec/s run, 3,000,000 x 1 KiB
# records (3 GiB) at unlimited rate to another topic, deleted (its files
# are removed while the run measures) or kept
PRELOAD_ARGS   = --preload-records 3000000
# catching up: 150,000 x 1 KiB (146 MiB) at 10k rec/s with no consumer,
# then a new consumer reads the topic from its start (--catch-up, its rate
# in the row's label): all but the last 64 MiB (the node's ring of recent
# batches) comes from object storage, one small range per partition and flush
CATCHUP_ARGS   = --target streamline --partitions 12 --records 150000 --rate 10000 --record-bytes 1024 --storage-mode diskless --merge=false --produce-only --catch-up
bench:
	@mkdir -p bin
	@test -n "$(BENCH_DIR)" && rm -rf "$(BENCH_DIR)" && mkdir -p "$(BENCH_DIR)"
	@CGO_ENABLED=0 $(GO) build -o bin/streamline-bench ./services/cmd/streamline-bench
	@CGO_ENABLED=0 $(GO) build -o bin/streamline ./services/cmd/streamline
	@bin/streamline-bench --row-header
	@bin/streamline-bench $(BENCH_ARGS) --storage-mode local --results-dir $(BENCH_DIR) --row "local"
	@bin/streamline-bench $(BENCH_ARGS) --storage-mode local --txn-records 100 --results-dir $(BENCH_DIR) --row "local, transactions of 100 records (latency: send to commit)"
	@bin/streamline-bench $(BENCH_ARGS) $(HYBRID_ARGS) --storage-mode hybrid --results-dir $(BENCH_DIR) --row "hybrid, 1 MiB segments, 4 MiB local retention"
	@bin/streamline-bench $(BENCH_ARGS) --records 100000 --rate 10000 $(HYBRID_ARGS) --storage-mode local,hybrid --results-dir $(BENCH_DIR) --row "10k rec/s"
	@bin/streamline-bench $(BENCH_ARGS) --records 100000 --rate 10000 $(PRELOAD_ARGS) --preload-then keep --storage-mode local --results-dir $(BENCH_DIR) --row "local, 10k rec/s, right after 3 GiB at unlimited rate to another topic (kept)"
	@bin/streamline-bench $(BENCH_ARGS) --records 100000 --rate 10000 $(PRELOAD_ARGS) --preload-then delete --storage-mode local --results-dir $(BENCH_DIR) --row "local, 10k rec/s, right after 3 GiB at unlimited rate to another topic, deleted as the run starts"
	@bin/streamline-bench $(BENCH_ARGS) --server-bin bin/streamline --storage-mode local --results-dir $(BENCH_DIR) --row "local, all-in-one binary as a child process (fresh data directory)"
	@bin/streamline-bench $(BENCH_ARGS) --storage-mode diskless --merge=false --results-dir $(BENCH_DIR) --row "diskless, merging off"
	@bin/streamline-bench $(BENCH_ARGS) --storage-mode diskless --merge=false --txn-records 100 --results-dir $(BENCH_DIR) --row "diskless, merging off, transactions of 100 records (latency: send to commit)"
	@bin/streamline-bench $(BENCH_ARGS) $(HYBRID_ARGS) --storage-mode hybrid --txn-records 100 --results-dir $(BENCH_DIR) --row "hybrid, transactions of 100 records (latency: send to commit)"
	@bin/streamline-bench $(BENCH_ARGS) --storage-mode diskless --merge-min-age 2s --merge-parallelism 4 --results-dir $(BENCH_DIR) --row "diskless, merging (age 2 s, 4 writers)"
	@bin/streamline-bench $(BENCH_ARGS) --storage-mode diskless --merge-min-age 2s --merge-parallelism 1 --results-dir $(BENCH_DIR) --row "diskless, merging (age 2 s, 1 writer, the all-in-one's default)"
	@bin/streamline-bench $(BENCH_ARGS) --storage-mode local --logsvc-nodes 3 --replication-factor 1 --results-dir $(BENCH_DIR) --row "local, 3 nodes, RF=1"
	@bin/streamline-bench $(BENCH_ARGS) --storage-mode local --logsvc-nodes 3 --replication-factor 3 --results-dir $(BENCH_DIR) --row "local, 3 nodes, RF=3 (acks=all)"
	@bin/streamline-bench $(RF_ARGS) --rate 0 --replication-factor 1 --results-dir $(BENCH_DIR) --row "local, 3 nodes, RF=1, unlimited rate"
	@bin/streamline-bench $(RF_ARGS) --rate 0 --replication-factor 3 --results-dir $(BENCH_DIR) --row "local, 3 nodes, RF=3 (acks=all), unlimited rate"
	@bin/streamline-bench $(RF_ARGS) --rate 10000 --replication-factor 3 --results-dir $(BENCH_DIR) --row "local, 3 nodes, RF=3 (acks=all), 10k rec/s"
	@bin/streamline-bench --target kfake --partitions 12 --records $(BENCH_RECORDS) --rate $(BENCH_RATE) --record-bytes 1024 --results-dir $(BENCH_DIR) --row "kfake (franz-go in-memory broker, reference)"
	@bin/streamline-bench $(BENCH_ARGS) --storage-mode diskless --merge=false --s3 standard --diskless-batch-timeout 100ms --results-dir $(BENCH_DIR) --row "diskless, S3 Standard model, 100 ms batches"
	@bin/streamline-bench $(BENCH_ARGS) --storage-mode diskless --merge=false --s3 express --diskless-batch-timeout 10ms --results-dir $(BENCH_DIR) --row "diskless, S3 Express model, 10 ms batches"
	@bin/streamline-bench $(BENCH_ARGS) --storage-mode diskless --merge=false --s3 express --diskless-batch-timeout 10ms --diskless-eager-flush --results-dir $(BENCH_DIR) --row "diskless, S3 Express model, 10 ms batches, eager flush"
	@bin/streamline-bench $(CATCHUP_ARGS) --s3 express --diskless-batch-timeout 10ms --results-dir $(BENCH_DIR) --row "diskless, S3 Express model, 10 ms batches, 10k rec/s, no consumer"
	@bin/streamline-bench $(CATCHUP_ARGS) --s3 standard --diskless-batch-timeout 100ms --results-dir $(BENCH_DIR) --row "diskless, S3 Standard model, 100 ms batches, 10k rec/s, no consumer"
	@bin/streamline-bench $(TPUT_ARGS) --target kfake --results-dir $(BENCH_DIR) --row "throughput: kfake (reference), unlimited rate, 6 partitions"
	@bin/streamline-bench $(TPUT_ARGS) --target streamline --storage-mode local --results-dir $(BENCH_DIR) --row "throughput: local, unlimited rate, 6 partitions"
	@bin/streamline-bench $(TPUT_ARGS) --target streamline --storage-mode local --loopback-grpc --results-dir $(BENCH_DIR) --row "throughput: local, unlimited rate, 6 partitions, loopback gRPC between the all-in-one's services (--loopback-grpc)"
	@bin/streamline-bench $(TPUT_ARGS) --target streamline --storage-mode diskless --merge=false --results-dir $(BENCH_DIR) --row "throughput: diskless, directory store, unlimited rate, 6 partitions"
	@bin/streamline-bench $(TPUT_ARGS) --target streamline --storage-mode diskless --merge=false --s3 express --results-dir $(BENCH_DIR) --row "throughput: diskless, S3 Express model, unlimited rate, 6 partitions"
	@bin/streamline-bench $(TPUT_ARGS) --target streamline --server-bin bin/streamline --storage-mode diskless --merge=false --s3 express --results-dir $(BENCH_DIR) --row "throughput: diskless, S3 Express model, unlimited rate, 6 partitions, all-in-one binary as a child process (budgets 228 MiB + 200 MiB)"
	@bin/streamline-bench $(TPUT_ARGS) --target kfake --results-dir $(BENCH_DIR) --row "throughput: kfake (reference) again, after the rows above"
	@bin/streamline-bench --plot $(BENCH_DIR)
	@echo "table: $(BENCH_DIR)/results.md, latency CDF plot: $(BENCH_DIR)/latency-cdf.png"

## run: the all-in-one server on 127.0.0.1:9092
run:
	$(GO) run ./services/cmd/streamline

## generate: regenerate protobuf/gRPC code with the pinned local plugins
generate: tools
	PATH="$(GOBIN):$$PATH" buf generate

## lint: buf lint, gofmt, go vet
lint: tools
	PATH="$(GOBIN):$$PATH" buf lint
	@out=$$(gofmt -l proto shared gateway logsvc uploader services); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## tools: install the pinned code generators and test servers
tools:
	@test -x $(GOBIN)/buf || $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	@test -x $(GOBIN)/protoc-gen-go || $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	@test -x $(GOBIN)/protoc-gen-go-grpc || $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	@test -x $(GOBIN)/grpcurl || CGO_ENABLED=0 $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)
	@$(GO) version -m $(GOBIN)/versitygw 2>/dev/null | grep -q 'versity/versitygw[[:space:]]*$(VERSITYGW_VERSION)[[:space:]]' || CGO_ENABLED=0 $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)

clean:
	rm -rf bin

## txn-etl: franz-go's own TestTxnEtl (a transactional consume-transform-
## produce chain, checked exactly once) against the all-in-one, once with
## local and once with diskless topics (KGO_TEST_RECORDS records each)
TXN_ETL_RECORDS ?= 50000
txn-etl:
	@mkdir -p bin && CGO_ENABLED=0 $(GO) build -o bin/streamline ./services/cmd/streamline
	@set -e; for mode in local diskless; do \
		dir=$$(mktemp -d); \
		bin/streamline --data-dir $$dir --default-storage-mode $$mode --kafka-addr 127.0.0.1:29092 \
			--etcd-client-addr 127.0.0.1:22379 --etcd-peer-addr 127.0.0.1:22380 --admin-addr 127.0.0.1:29095 \
			--http-addr 127.0.0.1:29094 >$$dir.log 2>&1 & pid=$$!; \
		trap "kill $$pid 2>/dev/null; rm -rf $$dir" EXIT; \
		until curl -sf http://127.0.0.1:29094/readyz >/dev/null; do sleep 0.5; done; \
		echo "== TestTxnEtl, $$mode topics"; \
		(cd services && KGO_SEEDS=127.0.0.1:29092 KGO_TEST_RF=1 KGO_TEST_RECORDS=$(TXN_ETL_RECORDS) \
			$(GO) test -count=1 -run 'TestTxnEtl$$' github.com/twmb/franz-go/pkg/kgo); \
		kill $$pid; wait $$pid 2>/dev/null || true; rm -rf $$dir $$dir.log; trap - EXIT; \
	done
