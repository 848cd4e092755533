// Command streamline runs the all-in-one Streamline server: embedded etcd,
// a log-service node, an uploader and a Kafka gateway in one process.
//
//	go run ./services/cmd/streamline
//
// then point any Kafka client at 127.0.0.1:9092.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/streamline-dev/streamline/services/allinone"
	"github.com/streamline-dev/streamline/shared/envflag"
	"github.com/streamline-dev/streamline/shared/logging"
	"github.com/streamline-dev/streamline/shared/meta"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	d := allinone.Default()
	fs := flag.NewFlagSet("streamline", flag.ContinueOnError)
	fs.StringVar(&d.DataDir, "data-dir", d.DataDir, "directory for all data (etcd, WAL, segments)")
	fs.StringVar(&d.KafkaAddr, "kafka-addr", d.KafkaAddr, "Kafka protocol listen address")
	fs.StringVar(&d.AdvertisedKafkaAddr, "advertised-kafka-addr", "", "address clients are told to connect to (default: --kafka-addr)")
	fs.StringVar(&d.EtcdClientAddr, "etcd-client-addr", d.EtcdClientAddr, "embedded etcd client address (etcdctl connects here)")
	fs.StringVar(&d.EtcdPeerAddr, "etcd-peer-addr", d.EtcdPeerAddr, "embedded etcd peer address")
	fs.StringVar(&d.LogsvcAddr, "logsvc-addr", d.LogsvcAddr, "internal gRPC address of the log service")
	fs.StringVar(&d.UploaderAddr, "uploader-addr", d.UploaderAddr, "internal gRPC address of the uploader")
	fs.StringVar(&d.ClusterID, "cluster-id", d.ClusterID, "cluster id reported to clients")
	fs.BoolVar(&d.AutoCreateTopics, "auto-create-topics", d.AutoCreateTopics, "create unknown topics on Metadata requests (auto.create.topics.enable)")
	parts := fs.Int("default-partitions", int(d.DefaultPartitions), "partitions of auto-created topics and CreateTopics with -1")
	mode := fs.String("default-storage-mode", string(d.DefaultStorageMode), "storage mode of topics created without storage.mode (local, hybrid, diskless)")
	fs.BoolVar(&d.UnsafeNoFsync, "unsafe-no-fsync", false, "skip WAL fsync (benchmarks only: acknowledged data may be lost on a crash)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	fs.Usage = envflag.Usage(fs, "streamline: the all-in-one Streamline server")
	if err := envflag.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "streamline:", err)
		return 2
	}
	d.DefaultPartitions = int32(*parts)
	d.DefaultStorageMode = meta.StorageMode(*mode)
	log, err := logging.New(os.Stderr, *level)
	if err != nil {
		fmt.Fprintln(os.Stderr, "streamline: --log-level:", err)
		return 2
	}
	d.Logger = log
	if err := d.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "streamline:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := allinone.Start(ctx, d)
	if err != nil {
		log.Error("start failed", "err", err)
		return 1
	}
	fmt.Printf("Streamline is ready. Kafka clients connect to %s (etcd at %s, data in %s)\n", s.KafkaAddr(), s.EtcdEndpoint(), d.DataDir)
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case <-s.Done():
		log.Error("a component stopped; shutting down")
		s.Close()
		return 1
	}
	if err := s.Close(); err != nil {
		log.Error("close", "err", err)
		return 1
	}
	return 0
}
