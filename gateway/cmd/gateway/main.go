// Command gateway runs one Streamline gateway: a Kafka-protocol endpoint
// that answers metadata from etcd and forwards data to log-service nodes.
//
// Every flag can also be set through an environment variable named
// STREAMLINE_ plus the flag name in upper case with dashes as underscores
// (--etcd-endpoints → STREAMLINE_ETCD_ENDPOINTS); a flag on the command
// line wins over the environment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/streamline-dev/streamline/gateway"
	"github.com/streamline-dev/streamline/shared/meta"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// errReported marks errors the flag package has already printed.
var errReported = errors.New("reported")

// options are the parsed flags.
type options struct {
	etcdEndpoints  string
	etcdPrefix     string
	nodeID         int
	id             string
	kafkaAddr      string
	advertisedAddr string
	rack           string
	autoCreate     bool
	partitions     int
	storageMode    string
	clusterID      string
	logLevel       slog.Level
}

func main() {
	opts, err := parseFlags(os.Args[1:], os.Getenv, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		if !errors.Is(err, errReported) {
			fmt.Fprintln(os.Stderr, "gateway:", err)
		}
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: opts.logLevel}))
	if err := run(opts, log); err != nil {
		log.Error("gateway failed", "err", err)
		os.Exit(1)
	}
}

// parseFlags parses args, taking defaults from the environment. Errors
// name the offending flag (and variable).
func parseFlags(args []string, getenv func(string) string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.etcdEndpoints, "etcd-endpoints", "localhost:2379", "comma-separated etcd endpoints")
	fs.StringVar(&o.etcdPrefix, "etcd-prefix", meta.DefaultPrefix, "etcd key prefix of the cluster's metadata")
	fs.IntVar(&o.nodeID, "node-id", 0, "Kafka broker id of this gateway (unique among gateways)")
	fs.StringVar(&o.id, "id", "", "gateway id in etcd (default gateway-<node-id>)")
	fs.StringVar(&o.kafkaAddr, "kafka-addr", gateway.DefaultListenAddr, "Kafka listener address")
	fs.StringVar(&o.advertisedAddr, "advertised-kafka-addr", "", "host:port advertised to clients (default: listen host or hostname, bound port)")
	fs.StringVar(&o.rack, "rack", "", "rack advertised to clients")
	fs.BoolVar(&o.autoCreate, "auto-create-topics", false, "create missing topics on Metadata requests")
	fs.IntVar(&o.partitions, "default-partitions", 1, "partitions of topics created without a count")
	fs.StringVar(&o.storageMode, "default-storage-mode", string(meta.StorageLocal), "storage mode of topics that do not set storage.mode (local|hybrid|diskless)")
	fs.StringVar(&o.clusterID, "cluster-id", gateway.DefaultClusterID, "cluster id reported to clients (same on every gateway)")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")

	// Environment first, so the command line overrides it.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := "STREAMLINE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("invalid value %q for flag --%s (from %s): %v", v, f.Name, name, err)
			}
		}
	})
	if envErr != nil {
		return o, envErr
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, fmt.Errorf("%w: %v", errReported, err) // the flag package printed it
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if o.nodeID < 0 || o.nodeID > 1<<31-1 {
		return o, fmt.Errorf("invalid value %d for flag --node-id: must be 0..2147483647", o.nodeID)
	}
	if o.partitions < 1 || o.partitions > meta.MaxPartitions {
		return o, fmt.Errorf("invalid value %d for flag --default-partitions: must be 1..%d", o.partitions, meta.MaxPartitions)
	}
	if mode, err := meta.ParseStorageMode(o.storageMode); err != nil {
		return o, fmt.Errorf("invalid value for flag --default-storage-mode: %v", err)
	} else if err := mode.Supported(); err != nil {
		return o, fmt.Errorf("invalid value for flag --default-storage-mode: %v", err)
	}
	if strings.TrimSpace(o.etcdEndpoints) == "" {
		return o, errors.New("invalid value for flag --etcd-endpoints: at least one endpoint is required")
	}
	return o, nil
}

func run(o options, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   strings.Split(o.etcdEndpoints, ","),
		DialTimeout: 5 * time.Second,
		Context:     context.Background(),
	})
	if err != nil {
		return fmt.Errorf("etcd client: %w", err)
	}
	defer cli.Close()

	g, err := gateway.New(gateway.Config{
		ID: o.id, NodeID: int32(o.nodeID), ListenAddr: o.kafkaAddr, AdvertisedAddr: o.advertisedAddr,
		Rack: o.rack, ClusterID: o.clusterID, AutoCreateTopics: o.autoCreate,
		DefaultPartitions: int32(o.partitions), DefaultStorageMode: meta.StorageMode(o.storageMode),
		Etcd: cli, EtcdPrefix: o.etcdPrefix, Logger: log,
	})
	if err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := g.Start(startCtx); err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("shutting down")
	return g.Close()
}
