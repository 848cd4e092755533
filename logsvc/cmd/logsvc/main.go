// Command logsvc runs one log-service node: it leads the partitions etcd
// assigns it and serves the gRPC LogService to gateways.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/streamline-dev/streamline/logsvc"
	"github.com/streamline-dev/streamline/logsvc/wal"
	"github.com/streamline-dev/streamline/shared/envflag"
	"github.com/streamline-dev/streamline/shared/logging"
	"github.com/streamline-dev/streamline/shared/meta"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("logsvc", flag.ContinueOnError)
	var (
		id         = fs.String("id", "", "node id in etcd (default: kept in <data-dir>/node-id, generated on first start)")
		dataDir    = fs.String("data-dir", "./logsvc-data", "directory for the WAL and partition segments")
		addr       = fs.String("grpc-addr", "127.0.0.1:9093", "gRPC LogService listen address")
		advertised = fs.String("advertised-grpc-addr", "", "address gateways dial (default: the listen address)")
		etcd       = fs.String("etcd-endpoints", "http://127.0.0.1:2379", "comma-separated etcd endpoints")
		prefix     = fs.String("etcd-prefix", meta.DefaultPrefix, "etcd key prefix")
		ttl        = fs.Duration("session-ttl", 10*time.Second, "etcd lease TTL of this node's registration")
		retention  = fs.Duration("retention-check-interval", 5*time.Minute, "how often retention.ms/retention.bytes are enforced")
		noSync     = fs.Bool("unsafe-no-fsync", false, "skip WAL fsync (benchmarks only: acknowledged data may be lost on a crash)")
		level      = fs.String("log-level", "info", "debug, info, warn or error")
	)
	fs.Usage = envflag.Usage(fs, "logsvc: a Streamline log-service node")
	if err := envflag.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "logsvc:", err)
		return 2
	}
	log, err := logging.New(os.Stderr, *level)
	if err != nil {
		fmt.Fprintln(os.Stderr, "logsvc: --log-level:", err)
		return 2
	}
	cli, err := meta.Dial(*etcd)
	if err != nil {
		fmt.Fprintln(os.Stderr, "logsvc: --etcd-endpoints:", err)
		return 2
	}
	defer cli.Close()
	node, err := logsvc.New(logsvc.Config{
		ID: *id, DataDir: *dataDir, ListenAddr: *addr, AdvertisedAddr: *advertised,
		Etcd: cli, EtcdPrefix: *prefix, SessionTTL: *ttl, RetentionCheckInterval: *retention,
		WAL: wal.Options{NoSync: *noSync}, Logger: log,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := node.Start(ctx); err != nil {
		log.Error("start failed", "err", err)
		return 1
	}
	code := 0
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case <-node.Done():
		log.Error("etcd lease lost; stopping so that another node can lead these partitions safely")
		code = 1
	}
	if err := node.Close(); err != nil {
		log.Error("close", "err", err)
		code = 1
	}
	return code
}
