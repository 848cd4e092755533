// Command streamline-bench measures produce throughput, produce latency and
// end-to-end latency against a Kafka-protocol address.
//
//	streamline-bench --target streamline        # an all-in-one started in a temp dir
//	streamline-bench --target kfake             # franz-go's in-memory broker, same load
//	streamline-bench --brokers 127.0.0.1:9092   # an already running server
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"

	"github.com/streamline-dev/streamline/logsvc"
	"github.com/streamline-dev/streamline/logsvc/wal"
	"github.com/streamline-dev/streamline/services/allinone"
	"github.com/streamline-dev/streamline/services/bench"
	"github.com/streamline-dev/streamline/shared/envflag"
	"github.com/streamline-dev/streamline/uploader/merge"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("streamline-bench", flag.ContinueOnError)
	var (
		target   = fs.String("target", "", "start a server to measure: streamline (all-in-one in a temp dir) or kfake; empty uses --brokers")
		brokers  = fs.String("brokers", "127.0.0.1:9092", "comma-separated Kafka addresses (when --target is empty)")
		topic    = fs.String("topic", fmt.Sprintf("bench-%d", time.Now().Unix()), "topic to create and use")
		parts    = fs.Int("partitions", 3, "partitions of the topic")
		records  = fs.Int("records", 200000, "records to produce")
		size     = fs.Int("record-bytes", 1024, "value size of each record")
		rate     = fs.Int("rate", 0, "records per second (0: unlimited); set it to measure latency below saturation")
		linger   = fs.Duration("linger", 0, "producer linger")
		compress = fs.String("compression", "none", "none, gzip, snappy, lz4 or zstd")
		noSync   = fs.Bool("unsafe-no-fsync", false, "with --target streamline: skip WAL fsync")
		prodOnly = fs.Bool("produce-only", false, "do not consume (no end-to-end latency)")
		mode     = fs.String("storage-mode", "local", "storage mode of the benchmark topic: local or diskless")
		s3model  = fs.String("s3", "", "with --target streamline and diskless: serve the object store from an in-process S3 server (gofakes3) behind a latency model: none, standard (PUT p50 60/p99 250 ms, GET 30/120 ms) or express (PUT 5/15 ms); empty uses a local directory")
		batchTO  = fs.Duration("diskless-batch-timeout", 100*time.Millisecond, "with --target streamline: the diskless batch timeout (batch_timeout_ms)")
		cpuProf  = fs.String("cpuprofile", "", "write a CPU profile of this process (client and any in-process server) to this file")
		logFile  = fs.String("server-log", "", "with --target streamline: write the in-process servers' logs (info and up) to this file")
		merging  = fs.Bool("merge", true, "with --target streamline: run the uploader's merger (diskless ranges into segment objects)")
		mergeAge = fs.Duration("merge-min-age", 5*time.Minute, "with --target streamline: --merge-min-age of the all-in-one (set it below the run's length to measure produce while merging)")
		mergeInt = fs.Duration("merge-interval", merge.DefaultInterval, "with --target streamline: --merge-interval of the all-in-one")
		mergePar = fs.Int("merge-parallelism", merge.DefaultParallelism, "with --target streamline: --merge-parallelism of the all-in-one")
		nodes    = fs.Int("logsvc-nodes", 1, "with --target streamline: log-service nodes in the process (the all-in-one's and more on its etcd)")
		rf       = fs.Int("replication-factor", 1, "replication factor of the benchmark topic (at most --logsvc-nodes); the producer uses acks=all")
		header   = fs.Bool("row-header", false, "print the header of the Markdown table --row writes rows of, and exit")
		row      = fs.String("row", "", "print one Markdown table row with this label instead of the summary (make bench builds its table from rows)")
	)
	fs.Usage = envflag.Usage(fs, "streamline-bench: produce/consume load with throughput and latency percentiles")
	if err := envflag.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "streamline-bench:", err)
		return 2
	}
	if *header {
		fmt.Println(bench.RowHeader)
		return 0
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
	addrs := strings.Split(*brokers, ",")
	label := *brokers
	switch *target {
	case "":
	case "kfake":
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			fmt.Fprintln(os.Stderr, "kfake:", err)
			return 1
		}
		defer c.Close()
		addrs, label = c.ListenAddrs(), "kfake"
	case "streamline":
		dir, err := os.MkdirTemp("", "streamline-bench-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		cfg := allinone.Default()
		ports := free(3)
		cfg.DataDir, cfg.KafkaAddr, cfg.EtcdClientAddr, cfg.EtcdPeerAddr = dir, ports[0], ports[1], ports[2]
		cfg.UnsafeNoFsync = *noSync
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
		cfg.Merge.Disabled, cfg.Merge.MinAge, cfg.Merge.Interval = !*merging, *mergeAge, *mergeInt
		cfg.Merge.Parallelism = *mergePar
		if *s3model != "" {
			url, stop, err := startS3(*s3model)
			if err != nil {
				fmt.Fprintln(os.Stderr, "streamline-bench: --s3:", err)
				return 2
			}
			defer stop()
			cfg.ObjectStore = url
			fmt.Printf("object store: in-process S3 (gofakes3) behind the %q latency model; floor per produce = batch timeout %v + PUT + etcd commit\n", *s3model, *batchTO)
		}
		s, err := allinone.Start(ctx, cfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "start streamline:", err)
			return 1
		}
		defer s.Close()
		for i := 2; i <= *nodes; i++ {
			n, err := extraLogNode(ctx, s, dir, i, *noSync, cfg.Logger)
			if err != nil {
				fmt.Fprintln(os.Stderr, "start streamline: log-service node:", err)
				return 1
			}
			defer n.Close()
		}
		addrs, label = []string{s.KafkaAddr()}, fmt.Sprintf("streamline (%s topic, all-in-one, %d log-service nodes, replication factor %d)", *mode, *nodes, *rf)
	default:
		fmt.Fprintf(os.Stderr, "streamline-bench: --target must be streamline, kfake or empty, got %q\n", *target)
		return 2
	}
	res, err := bench.Run(ctx, bench.Config{
		Brokers: addrs, Topic: *topic, Partitions: int32(*parts), Records: *records, RecordBytes: *size,
		Rate: *rate, Linger: *linger, Compression: *compress, CreateTopic: true, ProduceOnly: *prodOnly, ReplicationFactor: int16(*rf),
		ConfigEntries: map[string]*string{"storage.mode": mode},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "streamline-bench:", err)
		return 1
	}
	if *row != "" {
		res.Row(os.Stdout, *row)
		return 0
	}
	res.Print(os.Stdout, label)
	return 0
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
func extraLogNode(ctx context.Context, s *allinone.Server, dir string, i int, noSync bool, logger *slog.Logger) (*logsvc.Node, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.EtcdEndpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, err
	}
	n, err := logsvc.New(logsvc.Config{
		ID: fmt.Sprintf("logsvc-%d", i), DataDir: filepath.Join(dir, fmt.Sprintf("logsvc-%d", i)), Etcd: cli,
		WAL: wal.Options{NoSync: noSync}, Logger: logger.With("node", fmt.Sprintf("logsvc-%d", i)),
	})
	if err == nil {
		err = n.Start(ctx)
	}
	if err != nil {
		cli.Close()
		return nil, err
	}
	return n, nil
}
