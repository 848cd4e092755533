// Command streamline-bench measures produce throughput, produce latency and
// end-to-end latency against a Kafka-protocol address.
//
//	streamline-bench --target streamline        # an all-in-one started in a temp dir
//	streamline-bench --target kfake             # franz-go's in-memory broker, same load
//	streamline-bench --brokers 127.0.0.1:9092   # an already running server
//
// --storage-mode local,hybrid runs the same load on a topic of each mode
// in turn against the same server (--rounds N repeats it, alternating the
// order); --segment-bytes and --local-retention-bytes make a hybrid topic
// roll, upload and delete local segments during the measurement, and a
// hybrid run reports what it uploaded (streamline_logsvc_tier_* from the
// in-process registries, or --metrics-url).
//
// --row LABEL prints a Markdown table row instead of the summary (make
// bench); --results-dir DIR also adds the run to the results folder DIR
// (its row and latency CDFs, see package bench), and --plot DIR draws
// DIR/latency-cdf.png from the runs there.
//
// --server-bin PATH (with --target streamline) runs the all-in-one binary
// PATH as a child process instead, and reports its resident set size
// (peak and end of each run, sampled every 100 ms); --s3-outage-after and
// --s3-outage-for make the in-process S3 (--s3) refuse every request for
// a while during each run, and the summary reports the throughput
// before, during and after the outage.
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/streamline-dev/streamline/logsvc"
	"github.com/streamline-dev/streamline/logsvc/buffer"
	"github.com/streamline-dev/streamline/logsvc/wal"
	"github.com/streamline-dev/streamline/services/allinone"
	"github.com/streamline-dev/streamline/services/bench"
	"github.com/streamline-dev/streamline/shared/envflag"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/objstore"
	_ "github.com/streamline-dev/streamline/shared/objstore/objstorefs" // file:// URLs
	_ "github.com/streamline-dev/streamline/shared/objstore/objstores3" // s3:// URLs
	"github.com/streamline-dev/streamline/shared/objstore/objstoretest"
	"github.com/streamline-dev/streamline/uploader"
	"github.com/streamline-dev/streamline/uploader/merge"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("streamline-bench", flag.ContinueOnError)
	var (
		target   = fs.String("target", "", "start a server to measure: streamline (all-in-one in a temp dir) or kfake; empty uses --brokers")
		brokers  = fs.String("brokers", "127.0.0.1:9092", "comma-separated Kafka addresses (when --target is empty)")
		topic    = fs.String("topic", fmt.Sprintf("bench-%d", time.Now().Unix()), "topic to create and use (with several runs, each run's topic is this plus -<mode>-<round>)")
		parts    = fs.Int("partitions", 3, "partitions of the topic")
		records  = fs.Int("records", 200000, "records to produce")
		size     = fs.Int("record-bytes", 1024, "value size of each record")
		rate     = fs.Int("rate", 0, "records per second (0: unlimited); set it to measure latency below saturation")
		linger   = fs.Duration("linger", 0, "producer linger")
		compress = fs.String("compression", "none", "none, gzip, snappy, lz4 or zstd")
		noSync   = fs.Bool("unsafe-no-fsync", false, "with --target streamline: skip WAL fsync")
		loopback = fs.Bool("loopback-grpc", false, "with --target streamline: the all-in-one's gateway calls its log service, and the log service its uploader, over gRPC on loopback instead of in-process (its --loopback-grpc)")
		prodOnly = fs.Bool("produce-only", false, "do not consume (no end-to-end latency)")
		txnRecs  = fs.Int("txn-records", 0, "produce in transactions of this many records (transactional producer, read_committed consumer; produce latency = send to commit); 0: idempotent, no transactions")
		mode     = fs.String("storage-mode", "local", "storage mode of the benchmark topic: local, hybrid or diskless; a comma-separated list (e.g. local,hybrid) runs each mode in turn against the same server, each on a new topic")
		rounds   = fs.Int("rounds", 1, "run the --storage-mode list this many times against the same server, alternating its order each round (local,hybrid: L H, H L, L H, ...)")
		settle   = fs.Duration("settle", 2*time.Second, "with more than one run: pause between runs so the previous run's hybrid uploads and local retention finish (the all-in-one's merger rewrites small hybrid segments every --merge-interval: a settle past it keeps that out of the next run)")
		segBytes byteSize
		locRet   byteSize
		topicCfg configList
		s3model  = fs.String("s3", "", "with --target streamline and diskless or hybrid: serve the object store from an in-process S3 server (gofakes3) behind a latency model: none, standard (PUT p50 60/p99 250 ms, GET 30/120 ms to the first byte) or express (PUT and GET 5/15 ms); both models then send a GET's body at 90 MB/s; empty uses a local directory")
		metrics  = fs.String("metrics-url", "", "Prometheus endpoint of the server under test (e.g. http://127.0.0.1:9094/metrics) to report the hybrid uploads of each run; with --target streamline the in-process registries are read")
		batchTO  = fs.Duration("diskless-batch-timeout", 100*time.Millisecond, "with --target streamline: the diskless batch timeout (batch_timeout_ms)")
		idleTO   = fs.Duration("diskless-idle-flush", buffer.DefaultIdleFlush, "with --target streamline: the all-in-one's --diskless-idle-flush (0: off)")
		eager    = fs.Bool("diskless-eager-flush", false, "with --target streamline: the all-in-one's --diskless-eager-flush (also cut a flush whenever no upload is running)")
		spans    = fs.Bool("trace-breakdown", false, "with --target streamline (in-process): trace every request of the server and print, after each run, the p50/p90/p99 of each span name and of the steps of a diskless batch (buffer wait before its flush is cut, upload, commit turn, commit, result hand-off); tracing costs throughput, so use it for latency runs")
		cpuProf  = fs.String("cpuprofile", "", "write a CPU profile of this process (client and any in-process server) to this file")
		logFile  = fs.String("server-log", "", "with --target streamline: write the in-process servers' logs (info and up) to this file")
		merging  = fs.Bool("merge", true, "with --target streamline: run the uploader's merger (diskless ranges into segment objects)")
		mergeAge = fs.Duration("merge-min-age", 5*time.Minute, "with --target streamline: --merge-min-age of the all-in-one (set it below the run's length to measure produce while merging)")
		mergeInt = fs.Duration("merge-interval", merge.DefaultInterval, "with --target streamline: --merge-interval of the all-in-one")
		mergePar = fs.Int("merge-parallelism", uploader.AllInOneMergeParallelism, "with --target streamline: --merge-parallelism of the all-in-one")
		hyPar    = fs.Int("hybrid-upload-parallelism", 1, "with --target streamline: segment uploads the log service runs at once for hybrid partitions")
		hyRate   = fs.Int64("hybrid-upload-bytes-per-second", 0, "with --target streamline: the all-in-one's --hybrid-upload-bytes-per-second (0: automatic pace, -1: unlimited)")
		nodes    = fs.Int("logsvc-nodes", 1, "with --target streamline: log-service nodes in the process (the all-in-one's and more on its etcd)")
		rf       = fs.Int("replication-factor", 1, "replication factor of the benchmark topic (at most --logsvc-nodes); the producer uses acks=all")
		header   = fs.Bool("row-header", false, "print the header of the Markdown table --row writes rows of, and exit")
		row      = fs.String("row", "", "print one Markdown table row per run with this label instead of the summary (make bench builds its table from rows); with several modes the label is <mode>, <topic configs set by flags>, <row>; a hybrid run's label ends with what it uploaded")
		resDir   = fs.String("results-dir", "", "with --row: also add each run to this results folder (created if needed): its row to DIR/results.md and its latency CDFs to DIR/NN-<label>.json (plot them with --plot DIR)")
		duration = fs.Duration("duration", 0, "stop producing each run after this long (--records still caps it; 0: run --records)")
		srvBin   = fs.String("server-bin", "", "with --target streamline: run this all-in-one binary (bin/streamline of make build) as a child process on free loopback ports in a temp dir instead of in-process, and report its resident set size (VmRSS, sampled every 100 ms: peak and end of each run)")
		outAfter = fs.Duration("s3-outage-after", 0, "with --s3-outage-for: when the outage starts, after the start of each run's produce")
		outFor   = fs.Duration("s3-outage-for", 0, "with --s3: make the in-process S3 refuse every request (--s3-outage-fault) for this long during each run, starting --s3-outage-after into it")
		outFault = fs.String("s3-outage-fault", "drop-request", "how the S3 outage refuses requests: drop-request (connection reset, nothing reaches S3), slowdown (503 SlowDown) or hang (no answer until the client gives up)")
		preload  = fs.Int("preload-records", 0, "before each run, produce this many records (same size, unlimited rate, no consumer) to a topic of the run's mode and configs, <topic>-preload, so the run measures a server right after heavy load (0: none)")
		preThen  = fs.String("preload-then", "delete", "with --preload-records: delete the preload topic right before the run (its files are removed while the run measures) or keep it")
		catchUp  = fs.Bool("catch-up", false, "after each run, read its topic from the start with a new consumer and report that read's rate (records/s, MiB/s): a consumer catching up on history. A diskless topic's older records then come from object storage once they are behind the node's ring of recent batches (its last 64 MiB) and the read cache (--read-cache-bytes)")
		plotDir  = fs.String("plot", "", "render DIR/latency-cdf.png (produce and end-to-end latency CDF of every run) from the results folder DIR written by --results-dir, and exit")
	)
	fs.Var(&segBytes, "segment-bytes", "segment.bytes of the benchmark topics (e.g. 1MiB; default: the server's): small segments roll during the run, so a hybrid topic uploads during the measurement")
	fs.Var(&locRet, "local-retention-bytes", "local.retention.bytes of the benchmark topics (e.g. 4MiB; -1 no local limit; default: the server's): a hybrid partition deletes uploaded local segments beyond it")
	var cacheB, bufB byteSize
	fs.Var(&cacheB, "read-cache-bytes", "with --target streamline: the all-in-one's --read-cache-bytes (diskless read cache; default its 100MiB)")
	fs.Var(&bufB, "diskless-max-buffered-bytes", "with --target streamline: the all-in-one's --diskless-max-buffered-bytes (diskless buffer bound; default its 64MiB)")
	fs.Var(&topicCfg, "topic-config", "name=value set on the benchmark topics (repeatable), e.g. segment.ms=1000")
	fs.Usage = envflag.Usage(fs, "streamline-bench: produce/consume load with throughput and latency percentiles")
	if err := envflag.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "streamline-bench:", err)
		return 2
	}
	if *resDir != "" && *row == "" {
		fmt.Fprintln(os.Stderr, "streamline-bench: --results-dir needs --row (the label of the run's row and files)")
		return 2
	}
	if *plotDir != "" && (*row != "" || *resDir != "" || *header) {
		fmt.Fprintln(os.Stderr, "streamline-bench: --plot renders an existing results folder and exits: run it on its own, after the runs (not with --row, --results-dir or --row-header)")
		return 2
	}
	if *header {
		fmt.Println(bench.RowHeader)
		return 0
	}
	if *plotDir != "" {
		if err := bench.Plot(*plotDir); err != nil {
			fmt.Fprintln(os.Stderr, "streamline-bench: --plot:", err)
			return 1
		}
		return 0
	}
	modes, err := parseModes(*mode)
	if err == nil && *rounds < 1 {
		err = fmt.Errorf("--rounds must be at least 1, got %d", *rounds)
	}
	if err == nil && *txnRecs < 0 {
		err = fmt.Errorf("--txn-records must be 0 (no transactions) or more, got %d", *txnRecs)
	}
	if err == nil {
		err = checkServerFlags(*target, *srvBin, *nodes, *s3model, *outAfter, *outFor, *duration, cacheB, bufB)
	}
	if err == nil && *spans && (*target != "streamline" || *srvBin != "") {
		err = errors.New("--trace-breakdown traces the in-process all-in-one: it needs --target streamline without --server-bin")
	}
	if err == nil && *preload < 0 {
		err = fmt.Errorf("--preload-records must be 0 (no preload) or more, got %d", *preload)
	}
	if err == nil && *preThen != "delete" && *preThen != "keep" {
		err = fmt.Errorf("--preload-then must be delete or keep, got %q", *preThen)
	}
	fault, ferr := outageFault(*outFault)
	if err == nil {
		err = ferr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "streamline-bench:", err)
		return 2
	}
	configs := map[string]string{}
	for _, kv := range topicCfg {
		configs[kv[0]] = kv[1]
	}
	if segBytes.set {
		configs[meta.ConfigSegmentBytes] = strconv.FormatInt(segBytes.n, 10)
	}
	if locRet.set {
		configs[meta.ConfigLocalRetentionBytes] = strconv.FormatInt(locRet.n, 10)
	}
	if _, ok := configs[meta.ConfigStorageMode]; ok {
		fmt.Fprintln(os.Stderr, "streamline-bench: set the storage mode with --storage-mode, not --topic-config")
		return 2
	}
	if *cpuProf != "" {
		f, err := os.Create(*cpuProf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "streamline-bench: --cpuprofile:", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "streamline-bench: --cpuprofile:", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	// Ctrl-C ends the run through the deferred cleanups (a --server-bin
	// child is stopped, temp dirs removed).
	ctx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	addrs := strings.Split(*brokers, ",")
	label := func(string) string { return *brokers }
	// tier reads the hybrid upload counters (nil: not known); disk is
	// what an in-process server keeps of a topic (nil: not known).
	var tier func() (bench.TierStats, error)
	var readCache func() (bench.ReadCacheStats, error) // diskless read cache counters (nil: not known)
	var disk func(topic string) (local, objects int64, err error)
	// rss reads the server's resident set size (nil: not measured); proxy
	// is the in-process S3's fault proxy (nil: no --s3).
	var rss func() (int64, error)
	var startup time.Duration // --server-bin: the child's cold start (0: not measured)
	var proxy *objstoretest.FaultProxy
	var breakdown *bench.SpanBreakdown // --trace-breakdown
	if *metrics != "" {
		tier = func() (bench.TierStats, error) { return bench.TierStatsURL(ctx, *metrics) }
		readCache = func() (bench.ReadCacheStats, error) { return bench.ReadCacheStatsURL(ctx, *metrics) }
	}
	switch *target {
	case "":
	case "kfake":
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			fmt.Fprintln(os.Stderr, "kfake:", err)
			return 1
		}
		defer c.Close()
		addrs, label = c.ListenAddrs(), func(string) string { return "kfake" }
	case "streamline":
		dir, err := os.MkdirTemp("", "streamline-bench-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		cfg := allinone.Default()
		ports := free(4)
		cfg.DataDir, cfg.KafkaAddr, cfg.EtcdClientAddr, cfg.EtcdPeerAddr = dir, ports[0], ports[1], ports[2]
		// Not the default 9094/9095: a bench must not collide with a
		// server (or a test) on this machine. No admin API is needed.
		cfg.HTTPAddr, cfg.AdminAddr = ports[3], ""
		cfg.UnsafeNoFsync, cfg.LoopbackRPC = *noSync, *loopback
		logOut := io.Discard
		if *logFile != "" {
			f, err := os.Create(*logFile)
			if err != nil {
				fmt.Fprintln(os.Stderr, "streamline-bench: --server-log:", err)
				return 2
			}
			defer f.Close()
			logOut = f
		}
		cfg.Logger = slog.New(slog.NewTextHandler(logOut, nil))
		cfg.Diskless.MaxDelay = *batchTO
		cfg.Diskless.IdleFlush = *idleTO
		cfg.Diskless.EagerFlush = *eager
		cfg.Merge.Disabled, cfg.Merge.MinAge, cfg.Merge.Interval = !*merging, *mergeAge, *mergeInt
		cfg.Merge.Parallelism = *mergePar
		cfg.Hybrid.UploadParallelism, cfg.Hybrid.UploadBytesPerSecond = *hyPar, *hyRate
		cfg.ReadCacheBytes, cfg.Diskless.MaxBufferedBytes = cacheB.n, int(bufB.n)
		// Hybrid and diskless topics need an object store: the all-in-one
		// defaults to the directory <data dir>/objects, or --s3.
		objects := filepath.Join(dir, "objects")
		if *s3model != "" {
			url, p, stop, err := startS3(*s3model)
			if err != nil {
				fmt.Fprintln(os.Stderr, "streamline-bench: --s3:", err)
				return 2
			}
			defer stop()
			cfg.ObjectStore, objects, proxy = url, "", p
			if *row == "" {
				wait := fmt.Sprintf("batch timeout %v", *batchTO)
				if *eager {
					wait = fmt.Sprintf("wait for a running upload (at most the batch timeout %v)", *batchTO)
				}
				fmt.Printf("object store: in-process S3 (gofakes3) behind the %q latency model; diskless produce = %s + PUT + etcd commit\n", *s3model, wait)
			}
		}
		if *srvBin != "" {
			c, err := startChild(ctx, *srvBin, childArgs(cfg), cfg.HTTPAddr, logOut)
			if err != nil {
				fmt.Fprintln(os.Stderr, "streamline-bench: --server-bin:", err)
				return 1
			}
			defer c.stop()
			addrs, rss = []string{cfg.KafkaAddr}, c.rss
			partDirs := []string{filepath.Join(dir, "logsvc", "partitions")}
			metricsURL := "http://" + cfg.HTTPAddr + "/metrics"
			tier = func() (bench.TierStats, error) { return bench.TierStatsURL(ctx, metricsURL) }
			readCache = func() (bench.ReadCacheStats, error) { return bench.ReadCacheStatsURL(ctx, metricsURL) }
			disk = diskUsage(ctx, addrs, partDirs, objects)
			label = func(m string) string {
				return fmt.Sprintf("streamline (%s topic, all-in-one %s, pid %d)", m, *srvBin, c.cmd.Process.Pid)
			}
			startup = c.startup
			if *row == "" {
				fmt.Printf("all-in-one %s (pid %d) in %s; metrics on %s; ready %v after its start (empty data directory)\n", *srvBin, c.cmd.Process.Pid, dir, metricsURL, c.startup.Round(time.Millisecond))
			}
			break
		}
		if *spans {
			breakdown = bench.NewSpanBreakdown()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(breakdown))
			defer tp.Shutdown(context.Background())
			cfg.TracerProvider = tp
		}
		s, err := allinone.Start(ctx, cfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "start streamline:", err)
			return 1
		}
		defer s.Close()
		gatherers := []prometheus.Gatherer{s.Metrics()}
		partDirs := []string{filepath.Join(dir, "logsvc", "partitions")}
		storeURL := cfg.ObjectStore
		if storeURL == "" {
			storeURL = "file://" + objects // what allinone.Start opened (dir is absolute)
		}
		for i := 2; i <= *nodes; i++ {
			reg := prometheus.NewRegistry()
			n, err := extraLogNode(ctx, s, dir, i, *noSync, storeURL, reg, cfg.Logger)
			if err != nil {
				fmt.Fprintln(os.Stderr, "start streamline: log-service node:", err)
				return 1
			}
			defer n.Close()
			gatherers = append(gatherers, reg)
			partDirs = append(partDirs, filepath.Join(dir, fmt.Sprintf("logsvc-%d", i), "partitions"))
		}
		addrs = []string{s.KafkaAddr()}
		label = func(m string) string {
			return fmt.Sprintf("streamline (%s topic, all-in-one, %d log-service nodes, replication factor %d)", m, *nodes, *rf)
		}
		tier = func() (bench.TierStats, error) { return bench.TierStatsFrom(gatherers...) }
		readCache = func() (bench.ReadCacheStats, error) { return bench.ReadCacheStatsFrom(gatherers...) }
		disk = diskUsage(ctx, addrs, partDirs, objects)
		if *row == "" {
			fmt.Printf("all-in-one in %s; metrics on http://%s/metrics\n", dir, s.HTTPAddr())
		}
	default:
		fmt.Fprintf(os.Stderr, "streamline-bench: --target must be streamline, kfake or empty, got %q\n", *target)
		return 2
	}

	// The runs: each mode of the list, --rounds times, the order reversed
	// every other round so neither mode always runs first.
	type run struct {
		mode  string
		round int
		res   bench.Result
	}
	var runs []run
	total := len(modes) * *rounds
	for round := 1; round <= *rounds; round++ {
		order := modes
		if round%2 == 0 {
			order = reversed(modes)
		}
		for _, m := range order {
			if len(runs) > 0 && *settle > 0 {
				time.Sleep(*settle)
			}
			// Each run (and so each row of make bench, one process per
			// row) starts from a clean disk; the preload of a row right
			// after heavy load comes after this, inside the row.
			syncDisks()
			name := *topic
			if total > 1 {
				name = fmt.Sprintf("%s-%s-%d", *topic, m, round)
			}
			entries := map[string]*string{meta.ConfigStorageMode: &m}
			for k, v := range configs {
				entries[k] = &v
			}
			var before bench.TierStats
			if tier != nil {
				if before, err = tier(); err != nil {
					fmt.Fprintln(os.Stderr, "streamline-bench: tier metrics:", err)
					return 1
				}
			}
			if *preload > 0 {
				pre, err := preloadRun(ctx, addrs, name+"-preload", *parts, *preload, *size, int16(*rf), entries, *preThen == "delete")
				if err != nil {
					fmt.Fprintf(os.Stderr, "streamline-bench: %s: --preload-records: %v\n", m, err)
					return 1
				}
				if *row == "" {
					fmt.Println(pre)
				}
				if breakdown != nil {
					breakdown.Reset() // the breakdown is of the measured run only
				}
			}
			// Sampled from the start of produce: the server's RSS and the
			// records acknowledged; the outage starts from there too.
			var acked atomic.Int64
			var smp *sampler
			putsBefore := int64(-1) // object-store PUTs before the run (--s3)
			if proxy != nil {
				putsBefore = proxy.RequestsOf(http.MethodPut)
			}
			var out *outage
			res, err := bench.Run(ctx, bench.Config{
				Brokers: addrs, Topic: name, Partitions: int32(*parts), Records: *records, RecordBytes: *size,
				Rate: *rate, Linger: *linger, Compression: *compress, CreateTopic: true, ProduceOnly: *prodOnly, ReplicationFactor: int16(*rf),
				ConfigEntries: entries, TxnRecords: *txnRecs, Duration: *duration, Acked: &acked, TolerateProduceErrors: *outFor > 0,
				Started: func() {
					smp = startSampler(100*time.Millisecond, rss, acked.Load)
					if *outFor > 0 {
						out = startOutage(proxy, fault, *outAfter, *outFor)
					}
				},
			})
			var samples []sample
			if smp != nil {
				samples = smp.stop()
			}
			var refused int64
			var outHappened bool
			if out != nil {
				refused, outHappened = out.stop()
			}
			if rss != nil {
				res.PeakRSS, res.EndRSS = peakEnd(samples)
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "streamline-bench: %s: %v\n", m, err)
				return 1
			}
			runs = append(runs, run{m, round, res})
			var puts string // the run's PUTs (--s3): what its flushes cost
			if putsBefore >= 0 {
				n := proxy.RequestsOf(http.MethodPut) - putsBefore
				puts = fmt.Sprintf("%d PUTs, %.0f/s", n, float64(n)/res.Elapsed.Seconds())
			}
			var caught *bench.CatchUpResult // --catch-up
			caughtGETs := int64(-1)         // object-store requests of the catch-up read (--s3)
			var caughtCache string          // the catch-up read's diskless read cache hits by tier
			if *catchUp {
				var before int64
				if proxy != nil {
					before = proxy.Requests()
				}
				var cacheBefore bench.ReadCacheStats
				if readCache != nil {
					if cacheBefore, err = readCache(); err != nil {
						fmt.Fprintln(os.Stderr, "streamline-bench: read cache metrics:", err)
						return 1
					}
				}
				c, err := bench.CatchUp(ctx, addrs, name, res.Records)
				if err != nil {
					fmt.Fprintf(os.Stderr, "streamline-bench: %s: --catch-up: %v\n", m, err)
					return 1
				}
				caught = &c
				if proxy != nil {
					caughtGETs = proxy.Requests() - before
				}
				if readCache != nil {
					after, err := readCache()
					if err != nil {
						fmt.Fprintln(os.Stderr, "streamline-bench: read cache metrics:", err)
						return 1
					}
					caughtCache = after.Sub(cacheBefore).String()
				}
			}
			var uploads string // what a hybrid run uploaded while it ran
			if tier != nil && m == string(meta.StorageHybrid) {
				after, err := tier()
				if err != nil {
					fmt.Fprintln(os.Stderr, "streamline-bench: tier metrics:", err)
					return 1
				}
				uploads = after.Sub(before).String() + " during the run"
			}
			if *row != "" {
				l := *row
				if len(modes) > 1 {
					l = strings.Join(append(append([]string{m}, describe(configs, m)...), *row), ", ")
				}
				if uploads != "" {
					l += " (" + uploads + ")"
				}
				if puts != "" {
					l += " (" + puts + ")"
				}
				if rss != nil {
					l += fmt.Sprintf(" (server RSS peak %.0f MiB)", float64(res.PeakRSS)/(1<<20))
				}
				if startup > 0 && len(runs) == 1 {
					l += fmt.Sprintf(" (cold start to ready %.2f s)", startup.Seconds())
				}
				if caught != nil {
					l += fmt.Sprintf(" (then read from the start: %.0f rec/s, %.1f MiB/s", caught.RecordsPerSec(), caught.MBPerSec())
					if caughtGETs >= 0 {
						l += fmt.Sprintf(", %d GETs", caughtGETs)
					}
					if caughtCache != "" {
						l += ", read cache hits: " + caughtCache
					}
					l += ")"
				}
				if outHappened {
					l += fmt.Sprintf(" (S3 outage %v at %v: %d requests refused, %d produce errors)", *outFor, *outAfter, refused, res.ProduceErrors)
				}
				res.Row(os.Stdout, l)
				if *resDir != "" {
					if err := bench.WriteResult(*resDir, l, res); err != nil {
						fmt.Fprintln(os.Stderr, "streamline-bench: --results-dir:", err)
						return 1
					}
				}
				continue
			}
			l := label(m)
			if total > 1 {
				l = fmt.Sprintf("[%s, round %d] %s", m, round, l)
			}
			res.Print(os.Stdout, l)
			if breakdown != nil {
				breakdown.Print(os.Stdout)
				breakdown.Reset()
			}
			if rss != nil {
				rssReport(os.Stdout, samples, bufB.or(buffer.DefaultMaxBufferedBytes), cacheB.or(100<<20))
			}
			if out != nil {
				out.report(os.Stdout, samples, refused, outHappened, res.Elapsed)
			}
			if res.ProduceErrors > 0 {
				fmt.Printf("  produce errors   %d records failed (the first: %v)\n", res.ProduceErrors, res.FirstProduceError)
			} else if out != nil {
				fmt.Println("  produce errors   none (every record acknowledged)")
			}
			if uploads != "" {
				fmt.Printf("  object tier      %s\n", uploads)
			}
			if puts != "" {
				fmt.Printf("  object store     %s while producing\n", puts)
			}
			if caught != nil {
				fmt.Printf("  catch-up read    %s, from the start with a new consumer", caught)
				if caughtGETs >= 0 {
					fmt.Printf(" (%d object-store requests: merging off, so GETs)", caughtGETs)
				}
				fmt.Println()
				if caughtCache != "" {
					fmt.Printf("  read cache hits  %s (of lookups, by tier, during the catch-up read)\n", caughtCache)
				}
			}
			if disk != nil && m == string(meta.StorageHybrid) {
				local, objects, err := disk(name)
				if err != nil {
					fmt.Fprintln(os.Stderr, "streamline-bench: disk usage:", err)
				} else {
					fmt.Printf("  on disk after    %.1f MiB in the topic's local partitions, every replica (of %.1f MiB produced)", float64(local)/(1<<20), float64(res.Bytes)/(1<<20))
					if objects >= 0 {
						fmt.Printf("; %.1f MiB in the object store directory (every run so far, merged copies until collected)", float64(objects)/(1<<20))
					}
					fmt.Println()
				}
			}
		}
	}
	if *row == "" && len(modes) > 1 {
		fmt.Printf("comparison (same server, %d round(s); medians over rounds):\n", *rounds)
		var base time.Duration
		for i, m := range modes {
			var p50, p99, p999, e2e []time.Duration
			var tput []float64
			for _, r := range runs {
				if r.mode == m {
					p50, p99, p999, e2e = append(p50, r.res.ProduceP50), append(p99, r.res.ProduceP99), append(p999, r.res.ProduceP999), append(e2e, r.res.E2EP99)
					tput = append(tput, r.res.RecordsPerSec())
				}
			}
			fmt.Printf("  %-9s produce p50 %-9v p99 %-9v p999 %-9v end-to-end p99 %-9v %6.0f rec/s   (produce p99 of each round: %v)",
				m, median(p50), median(p99), median(p999), median(e2e), medianF(tput), p99)
			if i == 0 {
				base = median(p99)
			} else if base > 0 {
				fmt.Printf("  p99 %+.1f%% vs %s", 100*(float64(median(p99))/float64(base)-1), modes[0])
			}
			fmt.Println()
		}
	}
	return 0
}

// preloadRun is --preload-records: n records as fast as the server takes
// them to topic, which is then deleted (del) or kept; it returns a line
// saying what it did.
func preloadRun(ctx context.Context, brokers []string, topic string, parts, n, size int, rf int16, entries map[string]*string, del bool) (string, error) {
	res, err := bench.Run(ctx, bench.Config{Brokers: brokers, Topic: topic, Partitions: int32(parts), Records: n, RecordBytes: size,
		CreateTopic: true, ProduceOnly: true, ReplicationFactor: rf, ConfigEntries: entries})
	if err != nil {
		return "", err
	}
	line := fmt.Sprintf("preload: %d records (%.0f MiB) to %s at %.0f rec/s", res.Records, float64(res.Bytes)/(1<<20), topic, res.RecordsPerSec())
	if !del {
		return line + ", topic kept", nil
	}
	start := time.Now()
	if err := bench.DeleteTopic(ctx, brokers, topic); err != nil {
		return "", err
	}
	return line + fmt.Sprintf(", then deleted (answered in %v); the run starts now", time.Since(start).Round(time.Millisecond)), nil
}

// parseModes parses --storage-mode: one mode or a comma-separated list.
func parseModes(s string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, m := range strings.Split(s, ",") {
		m = strings.TrimSpace(m)
		switch meta.StorageMode(m) {
		case meta.StorageLocal, meta.StorageHybrid, meta.StorageDiskless:
		default:
			return nil, fmt.Errorf("--storage-mode: %q is not local, hybrid or diskless", m)
		}
		if seen[m] {
			return nil, fmt.Errorf("--storage-mode: %s listed twice (use --rounds)", m)
		}
		seen[m] = true
		out = append(out, m)
	}
	return out, nil
}

func reversed(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

// describe names the topic configs set by flags that matter to a topic of
// the mode, for row labels ("1 MiB segments", "4 MiB local retention").
func describe(configs map[string]string, mode string) []string {
	var out []string
	if v, ok := configs[meta.ConfigSegmentBytes]; ok {
		out = append(out, humanBytes(v)+" segments")
	}
	if v, ok := configs[meta.ConfigLocalRetentionBytes]; ok && mode == string(meta.StorageHybrid) {
		switch v {
		case "-1":
			out = append(out, "no local retention limit")
		case "-2":
			out = append(out, "local retention = retention.bytes")
		default:
			out = append(out, humanBytes(v)+" local retention")
		}
	}
	return out
}

func humanBytes(v string) string {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return v + " B"
	}
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n%u.size == 0 {
			return fmt.Sprintf("%d %s", n/u.size, u.name)
		}
	}
	return fmt.Sprintf("%d B", n)
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func medianF(f []float64) float64 {
	if len(f) == 0 {
		return 0
	}
	s := slices.Clone(f)
	slices.Sort(s)
	return s[len(s)/2]
}

// diskUsage reads what a server on this machine keeps of a topic: the
// bytes in its local partition directories (partDirs) and in the object
// store directory objects (-1 when the store is not a directory).
func diskUsage(ctx context.Context, addrs, partDirs []string, objects string) func(topic string) (int64, int64, error) {
	return func(topic string) (int64, int64, error) {
		local, err := topicLocalBytes(ctx, addrs, topic, partDirs)
		if err != nil || objects == "" {
			return local, -1, err
		}
		return local, bench.DirBytes(objects), nil
	}
}

// childArgs are the flags of a --server-bin all-in-one for cfg.
func childArgs(cfg allinone.Config) []string {
	args := []string{
		"--data-dir", cfg.DataDir, "--kafka-addr", cfg.KafkaAddr, "--http-addr", cfg.HTTPAddr, "--admin-addr", cfg.AdminAddr,
		"--etcd-client-addr", cfg.EtcdClientAddr, "--etcd-peer-addr", cfg.EtcdPeerAddr,
		"--diskless-batch-timeout", cfg.Diskless.MaxDelay.String(), "--diskless-idle-flush", cfg.Diskless.IdleFlush.String(),
		"--diskless-eager-flush=" + strconv.FormatBool(cfg.Diskless.EagerFlush),
		"--merge=" + strconv.FormatBool(!cfg.Merge.Disabled), "--merge-min-age", cfg.Merge.MinAge.String(),
		"--merge-interval", cfg.Merge.Interval.String(), "--merge-parallelism", strconv.Itoa(cfg.Merge.Parallelism),
		"--hybrid-upload-parallelism", strconv.Itoa(cfg.Hybrid.UploadParallelism),
		"--hybrid-upload-bytes-per-second", strconv.FormatInt(cfg.Hybrid.UploadBytesPerSecond, 10),
	}
	if cfg.ObjectStore != "" {
		args = append(args, "--object-store", cfg.ObjectStore)
	}
	if cfg.ReadCacheBytes > 0 {
		args = append(args, "--read-cache-bytes", strconv.FormatInt(cfg.ReadCacheBytes, 10))
	}
	if cfg.Diskless.MaxBufferedBytes > 0 {
		args = append(args, "--diskless-max-buffered-bytes", strconv.Itoa(cfg.Diskless.MaxBufferedBytes))
	}
	if cfg.UnsafeNoFsync {
		args = append(args, "--unsafe-no-fsync")
	}
	if cfg.LoopbackRPC {
		args = append(args, "--loopback-grpc")
	}
	return args
}

// topicLocalBytes is the size of a topic's partition directories on the
// in-process log-service nodes (segments and indexes; the WAL is shared).
func topicLocalBytes(ctx context.Context, addrs []string, topic string, partDirs []string) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	td, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		return 0, err
	}
	d, ok := td[topic]
	if !ok || d.Err != nil {
		return 0, fmt.Errorf("topic %s: not listed (%v)", topic, d.Err)
	}
	id := hex.EncodeToString(d.ID[:])
	var n int64
	for _, pd := range partDirs {
		matches, _ := filepath.Glob(filepath.Join(pd, id+"-*"))
		for _, m := range matches {
			n += bench.DirBytes(m)
		}
	}
	return n, nil
}

// free reserves n distinct loopback ports at once and releases them.
func free(n int) []string {
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		defer l.Close()
		out = append(out, l.Addr().String())
	}
	return out
}

// extraLogNode starts log-service node i of an in-process cluster on the
// all-in-one's embedded etcd, so replicated topics can be measured on one
// machine (each node has its own WAL and fsyncs).
func extraLogNode(ctx context.Context, s *allinone.Server, dir string, i int, noSync bool, storeURL string, reg *prometheus.Registry, logger *slog.Logger) (*extraNode, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.EtcdEndpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, err
	}
	// The all-in-one's object store, so the node can lead hybrid and
	// diskless partitions too.
	objects, err := objstore.Open(ctx, storeURL)
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("object store: %w", err)
	}
	n, err := logsvc.New(logsvc.Config{
		ID: fmt.Sprintf("logsvc-%d", i), DataDir: filepath.Join(dir, fmt.Sprintf("logsvc-%d", i)), Etcd: cli,
		WAL: wal.Options{NoSync: noSync, Preallocate: true, DirectIO: true}, Logger: logger.With("node", fmt.Sprintf("logsvc-%d", i)),
		Objects: objects, Metrics: reg,
	})
	if err == nil {
		err = n.Start(ctx)
	}
	if err != nil {
		objects.Close()
		cli.Close()
		return nil, err
	}
	return &extraNode{n, objects, cli}, nil
}

// extraNode is a log-service node started by the bench, with the clients
// it owns.
type extraNode struct {
	*logsvc.Node
	objects objstore.Bucket
	cli     *clientv3.Client
}

func (n *extraNode) Close() error {
	err := n.Node.Close()
	n.objects.Close()
	n.cli.Close()
	return err
}
