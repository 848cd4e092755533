// Command streamline runs the all-in-one Streamline server: embedded etcd,
// a log-service node, an uploader and a Kafka gateway in one process.
//
//	go run ./services/cmd/streamline
//
// then point any Kafka client at 127.0.0.1:9092.
package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/streamline-dev/streamline/logsvc/buffer"
	"github.com/streamline-dev/streamline/logsvc/storage/disklessstore"
	"github.com/streamline-dev/streamline/logsvc/storage/hybridstore"
	"github.com/streamline-dev/streamline/logsvc/storage/localstore"
	"github.com/streamline-dev/streamline/services/allinone"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/svcmain"
	"github.com/streamline-dev/streamline/shared/telemetry"
	"github.com/streamline-dev/streamline/uploader"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	d := allinone.Default()
	fs := svcmain.NewFlags("streamline", "streamline: the all-in-one Streamline server", false)
	fs.StringVar(&d.DataDir, "data-dir", d.DataDir, "directory for all data (etcd, WAL, segments)")
	fs.StringVar(&d.KafkaAddr, "kafka-addr", d.KafkaAddr, "Kafka protocol listen address")
	fs.StringVar(&d.AdvertisedKafkaAddr, "advertised-kafka-addr", "", "address clients are told to connect to (default: --kafka-addr)")
	fs.StringVar(&d.EtcdClientAddr, "etcd-client-addr", d.EtcdClientAddr, "embedded etcd client address (etcdctl connects here)")
	fs.StringVar(&d.EtcdPeerAddr, "etcd-peer-addr", d.EtcdPeerAddr, "embedded etcd peer address")
	fs.StringVar(&d.AdminAddr, "admin-addr", d.AdminAddr, "admin gRPC API listen address (grpcurl, streamline-cli); empty: none")
	fs.StringVar(&d.HTTPAddr, "http-addr", d.HTTPAddr, "serve Prometheus /metrics, /healthz and /readyz (503 until started and registered) on this host:port (empty: off)")
	fs.StringVar(&d.LogsvcAddr, "logsvc-addr", d.LogsvcAddr, "internal gRPC address of the log service")
	fs.StringVar(&d.UploaderAddr, "uploader-addr", d.UploaderAddr, "internal gRPC address of the uploader")
	fs.StringVar(&d.ClusterID, "cluster-id", d.ClusterID, "cluster id reported to clients")
	fs.BoolVar(&d.AutoCreateTopics, "auto-create-topics", d.AutoCreateTopics, "create unknown topics on Metadata requests (auto.create.topics.enable)")
	parts := fs.Int("default-partitions", int(d.DefaultPartitions), "partitions of auto-created topics and CreateTopics with -1")
	mode := fs.String("default-storage-mode", string(d.DefaultStorageMode), "storage mode of topics created without storage.mode (local, hybrid, diskless; hybrid and diskless use --object-store)")
	objectsURL := fs.ObjectStore("object store for hybrid and diskless topics: file:///dir or s3://bucket/prefix?endpoint=...&region=... (default file://<data-dir>/objects)")
	fs.IntVar(&d.Diskless.MaxBatchBytes, "diskless-batch-bytes", 1<<20, "flush the diskless buffer when it holds this many bytes (batch_size_bytes)")
	fs.DurationVar(&d.Diskless.MaxDelay, "diskless-batch-timeout", 100*time.Millisecond, "flush the diskless buffer this long after its first batch, at most 10s (batch_timeout_ms)")
	fs.DurationVar(&d.Diskless.IdleFlush, "diskless-idle-flush", buffer.DefaultIdleFlush, "cut a diskless flush early once appends stop for this long, or for 4 mean gaps between appends if longer (producers are waiting for the buffered batches; steady arrivals keep --diskless-batch-timeout's batching); 0: off")
	fs.BoolVar(&d.Diskless.EagerFlush, "diskless-eager-flush", false, "also cut a diskless flush whenever no upload is running (group commit): at light load flushes then follow the object store's latency rather than --diskless-batch-timeout; for low-latency stores (S3 Express One Zone: produce p99 34 -> 25 ms for 2.7x the PUTs at 2,000 records/s); behind S3 Standard it only adds PUTs")
	fs.IntVar(&d.Diskless.MaxInFlight, "diskless-upload-parallelism", 4, "concurrent diskless uploads (upload_parallelism)")
	fs.IntVar(&d.Diskless.MaxBufferedBytes, "diskless-max-buffered-bytes", buffer.DefaultMaxBufferedBytes, "memory bound of the diskless buffer, over all diskless partitions of the node: bytes from append until uploaded and committed; appends wait beyond it (producers see backpressure)")
	memLimit := fs.MemoryLimitFlag()
	fs.Int64Var(&d.ReadCacheBytes, "read-cache-bytes", 100<<20, "cache of object ranges for diskless reads (read_cache_bytes)")
	d.Merge.AddFlags(fs.FlagSet, uploader.AllInOneMergeParallelism)
	fs.Int64Var(&d.MinFreeBytes, "min-free-bytes", localstore.DefaultMinFreeBytes, "free space kept on the data filesystem: below it, produce to local topics gets KAFKA_STORAGE_ERROR until space is freed (negative: no check)")
	fs.Int64Var(&d.Hybrid.MaxPendingBytes, "hybrid-max-pending-bytes", 1<<30, "per hybrid partition: local bytes not yet in the object tier above which produce is held back and then refused with KAFKA_STORAGE_ERROR (uploads failing or behind)")
	fs.IntVar(&d.Hybrid.UploadParallelism, "hybrid-upload-parallelism", 1, "segment uploads run at once, over all hybrid partitions (1: the all-in-one shares its cores and disk with everything else; uploads in bursts cost produce latency)")
	fs.Int64Var(&d.Hybrid.UploadBytesPerSecond, "hybrid-upload-bytes-per-second", 0, "pace of hybrid segment uploads in bytes per second over all partitions of the node (Kafka's remote.log.manager.copy.max.bytes.per.second); 0: automatic, twice the node's hybrid ingest rate and at least 16 MiB/s, spreading each upload over time so it does not take the produce path's CPU in bursts; -1: unlimited")
	fs.DurationVar(&d.Hybrid.UploadInterval, "hybrid-upload-interval", time.Second, "how often the leader of a hybrid partition looks for rolled segments to upload")
	fs.DurationVar(&d.TransactionMaxTimeout, "transaction-max-timeout", 15*time.Minute, "largest transaction.timeout.ms a transactional producer may ask for (Kafka's transaction.max.timeout.ms); older transactions are aborted")
	fs.DurationVar(&d.TransactionalIDExpiration, "transactional-id-expiration", 7*24*time.Hour, "forget a transactional id with no transaction open and no state change for this long (Kafka's transactional.id.expiration.ms): its producer then gets INVALID_PRODUCER_ID_MAPPING and its next InitProducerId a new producer id")
	txnVersion := fs.Int("transaction-version", 2, "transaction.version feature level advertised to clients: 2 (KIP-890 part 2: clients that know it add partitions implicitly and bump the epoch per transaction) or 1 (the classic protocol for every client)")
	fs.BoolVar(&d.LoopbackRPC, "loopback-grpc", false, "gateway to log service, log service to uploader and every service to the embedded etcd over gRPC on loopback sockets, as between separate processes, instead of in-process calls (for comparisons and debugging; costs CPU)")
	fs.BoolVar(&d.UnsafeNoFsync, "unsafe-no-fsync", false, "skip WAL fsync (benchmarks only: acknowledged data may be lost on a crash)")
	fs.BoolVar(&d.WALDirectIO, "wal-direct-io", true, "write WAL files with O_DIRECT, bypassing the page cache (nothing reads the WAL but recovery; the copy into the cache was a third of a saturated node's CPU); off where the file system lacks O_DIRECT")
	fs.BoolVar(&d.WALPreallocate, "wal-preallocate", true, "start each WAL file from a spare file of zeros prepared in the background, so WAL writes overwrite allocated blocks and their fsyncs are shorter; costs up to two 64 MiB WAL files of disk")
	if code, ok := fs.Parse(args); !ok {
		return code
	}
	var err error
	if d.ObjectStore, err = objectsURL(); err != nil {
		fs.Fail("%v", err)
		return svcmain.ExitUsage
	}
	if d.Hybrid.MaxPendingBytes <= 0 {
		fs.Fail("invalid value %d for flag --hybrid-max-pending-bytes: must be positive", d.Hybrid.MaxPendingBytes)
		return svcmain.ExitUsage
	}
	if d.Hybrid.UploadParallelism <= 0 {
		fs.Fail("invalid value %d for flag --hybrid-upload-parallelism: must be positive", d.Hybrid.UploadParallelism)
		return svcmain.ExitUsage
	}
	if d.Hybrid.UploadBytesPerSecond < hybridstore.UnlimitedUploadRate {
		fs.Fail("invalid value %d for flag --hybrid-upload-bytes-per-second: a bound in bytes per second, 0 (automatic) or -1 (unlimited)", d.Hybrid.UploadBytesPerSecond)
		return svcmain.ExitUsage
	}
	if d.TransactionMaxTimeout < time.Millisecond || d.TransactionMaxTimeout > math.MaxInt32*time.Millisecond {
		fs.Fail("invalid value %v for flag --transaction-max-timeout: must be between 1ms and %v", d.TransactionMaxTimeout, math.MaxInt32*time.Millisecond)
		return svcmain.ExitUsage
	}
	if d.TransactionalIDExpiration < time.Millisecond {
		fs.Fail("invalid value %v for flag --transactional-id-expiration: must be at least 1ms", d.TransactionalIDExpiration)
		return svcmain.ExitUsage
	}
	if *txnVersion < 1 || *txnVersion > 2 {
		fs.Fail("invalid value %d for flag --transaction-version: must be 1 or 2", *txnVersion)
		return svcmain.ExitUsage
	}
	d.TransactionVersion = int16(*txnVersion)
	if d.Hybrid.UploadInterval <= 0 {
		fs.Fail("invalid value %v for flag --hybrid-upload-interval: must be positive", d.Hybrid.UploadInterval)
		return svcmain.ExitUsage
	}
	d.DefaultPartitions = int32(*parts)
	d.DefaultStorageMode = meta.StorageMode(*mode)
	log, err := fs.Logger()
	if err != nil {
		fs.Fail("%v", err)
		return svcmain.ExitUsage
	}
	d.Logger = log
	if err := d.Validate(); err != nil {
		fs.Fail("%v", err)
		return svcmain.ExitUsage
	}
	// The all-in-one's memory budgets: the log service's diskless buffer,
	// read cache and ring of recent batches.
	limit, limitBy, err := svcmain.ApplyMemoryLimit(*memLimit, int64(d.Diskless.MaxBufferedBytes)+d.ReadCacheBytes+disklessstore.DefaultRingBytes)
	if err != nil {
		fs.Fail("%v", err)
		return svcmain.ExitUsage
	}
	svcmain.LogMemoryLimit(log, limit, limitBy)
	// Tracing from OTEL_EXPORTER_OTLP_* (off when none is set); the
	// server itself serves --http-addr.
	tp, stopTracing, err := telemetry.NewTracerProvider(context.Background(), "streamline")
	if err != nil {
		fs.Fail("%v", err)
		return svcmain.ExitUsage
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		stopTracing(ctx)
	}()
	telemetry.LogTracing(tp, "streamline", log)
	d.TracerProvider = tp
	srv := &server{cfg: d}
	return svcmain.Run(log, srv, func() {
		fmt.Printf("Streamline is ready. Kafka clients connect to %s (etcd at %s, data in %s)\n",
			srv.s.KafkaAddr(), srv.s.EtcdEndpoint(), d.DataDir)
		if a := srv.s.AdminAddr(); a != "" {
			fmt.Printf("Admin gRPC API at %s (grpcurl -plaintext %s list)\n", a, a)
		}
		if a := srv.s.HTTPAddr(); a != "" {
			fmt.Printf("Metrics at http://%s/metrics (health: /healthz, /readyz)\n", a)
		}
	})
}

// server adapts allinone.Start to svcmain.Service.
type server struct {
	cfg allinone.Config
	s   *allinone.Server
}

func (a *server) Start(ctx context.Context) (err error) {
	a.s, err = allinone.Start(ctx, a.cfg)
	return err
}

func (a *server) Done() <-chan struct{} { return a.s.Done() }

func (a *server) Close() error {
	if a.s == nil {
		return nil
	}
	return a.s.Close()
}
