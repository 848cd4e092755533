// Command logsvc runs one log-service node: it leads the partitions etcd
// assigns it and serves the gRPC LogService to gateways. Every flag can also
// be set as STREAMLINE_<FLAG> (e.g. STREAMLINE_DATA_DIR).
package main

import (
	"context"
	"os"
	"time"

	"github.com/streamline-dev/streamline/logsvc"
	"github.com/streamline-dev/streamline/logsvc/buffer"
	"github.com/streamline-dev/streamline/logsvc/storage/disklessstore"
	"github.com/streamline-dev/streamline/logsvc/storage/hybridstore"
	"github.com/streamline-dev/streamline/logsvc/storage/localstore"
	"github.com/streamline-dev/streamline/logsvc/wal"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/objstore"
	_ "github.com/streamline-dev/streamline/shared/objstore/objstorefs" // file:// URLs
	_ "github.com/streamline-dev/streamline/shared/objstore/objstores3" // s3:// URLs
	"github.com/streamline-dev/streamline/shared/svcmain"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := svcmain.NewFlags("logsvc", "logsvc: a Streamline log-service node", true)
	var (
		id          = fs.String("id", "", "node id in etcd (default: kept in <data-dir>/node-id, generated on first start)")
		dataDir     = fs.String("data-dir", "./logsvc-data", "directory for the WAL and partition segments")
		addr        = fs.String("grpc-addr", "127.0.0.1:9093", "gRPC LogService listen address")
		advertised  = fs.String("advertised-grpc-addr", "", "address gateways dial (default: the listen address)")
		rack        = fs.String("rack", "", "the node's rack or zone (Kafka's broker.rack), registered for rack-aware replica placement")
		prefix      = fs.String("etcd-prefix", meta.DefaultPrefix, "etcd key prefix")
		ttl         = fs.Duration("session-ttl", 10*time.Second, "etcd lease TTL of this node's registration")
		retention   = fs.Duration("retention-check-interval", 5*time.Minute, "how often retention.ms/retention.bytes are enforced")
		lagTime     = fs.Duration("replica-lag-time-max", logsvc.DefaultReplicaLagTime, "a follower not caught up with its leader for this long leaves the ISR (Kafka replica.lag.time.max.ms)")
		rebalance   = fs.Duration("leader-rebalance-interval", logsvc.DefaultLeaderRebalanceInterval, "how often the controller hands local partitions back to their preferred replicas once in sync (0: never)")
		throttle    = fs.Int64("replica-rebuild-throttle", 0, "bytes per second this node fetches, as a follower, for partitions it is not in sync for (rebuilding a wiped disk, catching up, a reassignment); 0: unlimited")
		noSync      = fs.Bool("unsafe-no-fsync", false, "skip WAL fsync (benchmarks only: acknowledged data may be lost on a crash)")
		walPrealloc = fs.Bool("wal-preallocate", true, "start each WAL file from a spare file of zeros prepared in the background, so WAL writes overwrite allocated blocks and their fsyncs are shorter; costs up to two WAL files (--wal-file-bytes each) of disk")
		walDirect   = fs.Bool("wal-direct-io", true, "write WAL files with O_DIRECT, bypassing the page cache (nothing reads the WAL but recovery; the copy into the cache was a third of a saturated node's CPU); off where the file system lacks O_DIRECT")
		walFile     = fs.Int64("wal-file-bytes", wal.DefaultFileBytes, "roll to a new WAL file at this size (and the size of a preallocated one)")
		objectsURL  = fs.ObjectStore("object store for diskless topics: file:///dir or s3://bucket/prefix?endpoint=...&region=... (empty: none, diskless topics cannot be led here)")
		batchBytes  = fs.Int("diskless-batch-bytes", 1<<20, "flush the diskless buffer when it holds this many bytes (batch_size_bytes)")
		batchWait   = fs.Duration("diskless-batch-timeout", 100*time.Millisecond, "flush the diskless buffer this long after its first batch, at most 10s (batch_timeout_ms)")
		idleFlush   = fs.Duration("diskless-idle-flush", buffer.DefaultIdleFlush, "cut a diskless flush early once appends stop for this long, or for 4 mean gaps between appends if longer (producers are waiting for the buffered batches; steady arrivals keep --diskless-batch-timeout's batching); 0: off")
		eagerFlush  = fs.Bool("diskless-eager-flush", false, "also cut a diskless flush whenever no upload is running (group commit): at light load flushes then follow the object store's latency rather than --diskless-batch-timeout; for low-latency stores (S3 Express One Zone: produce p99 34 -> 25 ms for 2.7x the PUTs at 2,000 records/s); behind S3 Standard it only adds PUTs")
		uploads     = fs.Int("diskless-upload-parallelism", 4, "concurrent diskless uploads (upload_parallelism)")
		buffered    = fs.Int("diskless-max-buffered-bytes", buffer.DefaultMaxBufferedBytes, "memory bound of the diskless buffer, over all diskless partitions of the node: bytes from append until uploaded and committed; appends wait beyond it (producers see backpressure)")
		memLimit    = fs.MemoryLimitFlag()
		cacheBytes  = fs.Int64("read-cache-bytes", 100<<20, "cache of object ranges for diskless reads (read_cache_bytes)")
		pending     = fs.Int64("hybrid-max-pending-bytes", 1<<30, "per hybrid partition: local bytes not yet in the object tier above which produce is held back and then refused with KAFKA_STORAGE_ERROR (uploads failing or behind)")
		upPar       = fs.Int("hybrid-upload-parallelism", 2, "segment uploads this node runs at once, over all its hybrid partitions")
		upRate      = fs.Int64("hybrid-upload-bytes-per-second", 0, "pace of hybrid segment uploads in bytes per second over all partitions of the node (Kafka's remote.log.manager.copy.max.bytes.per.second); 0: automatic, twice the node's hybrid ingest rate and at least 16 MiB/s, spreading each upload over time so it does not take the produce path's CPU in bursts; -1: unlimited")
		upEvery     = fs.Duration("hybrid-upload-interval", time.Second, "how often the leader of a hybrid partition looks for rolled segments to upload")
		minFree     = fs.Int64("min-free-bytes", localstore.DefaultMinFreeBytes, "free space kept on the data filesystem: below it, produce to local topics gets KAFKA_STORAGE_ERROR until space is freed (negative: no check)")
		_           = fs.HTTPAddr("") // served by fs.Telemetry
	)
	if code, ok := fs.Parse(args); !ok {
		return code
	}
	objects, err := objectsURL()
	if err != nil {
		fs.Fail("%v", err)
		return svcmain.ExitUsage
	}
	if *walFile <= 0 {
		fs.Fail("invalid value %d for flag --wal-file-bytes: must be positive", *walFile)
		return svcmain.ExitUsage
	}
	if *batchWait < 0 || *batchWait > meta.MaxBatchTimeout {
		fs.Fail("invalid value %v for flag --diskless-batch-timeout: must be between 0 and %v (a produce waits for its flush)", *batchWait, meta.MaxBatchTimeout)
		return svcmain.ExitUsage
	}
	if *idleFlush < 0 {
		fs.Fail("invalid value %v for flag --diskless-idle-flush: must not be negative (0: off)", *idleFlush)
		return svcmain.ExitUsage
	}
	if *buffered < 0 {
		fs.Fail("invalid value %d for flag --diskless-max-buffered-bytes: must not be negative", *buffered)
		return svcmain.ExitUsage
	}
	if *throttle < 0 {
		fs.Fail("invalid value %d for flag --replica-rebuild-throttle: must not be negative (0: unlimited)", *throttle)
		return svcmain.ExitUsage
	}
	if *pending <= 0 {
		fs.Fail("invalid value %d for flag --hybrid-max-pending-bytes: must be positive", *pending)
		return svcmain.ExitUsage
	}
	if *upPar <= 0 {
		fs.Fail("invalid value %d for flag --hybrid-upload-parallelism: must be positive", *upPar)
		return svcmain.ExitUsage
	}
	if *upRate < hybridstore.UnlimitedUploadRate {
		fs.Fail("invalid value %d for flag --hybrid-upload-bytes-per-second: a bound in bytes per second, 0 (automatic) or -1 (unlimited)", *upRate)
		return svcmain.ExitUsage
	}
	if *upEvery <= 0 {
		fs.Fail("invalid value %v for flag --hybrid-upload-interval: must be positive", *upEvery)
		return svcmain.ExitUsage
	}
	if *rebalance < 0 {
		fs.Fail("invalid value %v for flag --leader-rebalance-interval: must not be negative (0: never)", *rebalance)
		return svcmain.ExitUsage
	}
	if *rebalance == 0 {
		*rebalance = -1 // logsvc.Config: negative is never
	}
	if *lagTime < 10*time.Millisecond {
		fs.Fail("invalid value %v for flag --replica-lag-time-max: must be at least 10ms", *lagTime)
		return svcmain.ExitUsage
	}
	log, err := fs.Logger()
	if err != nil {
		fs.Fail("%v", err)
		return svcmain.ExitUsage
	}
	// The node's memory budgets: diskless buffer, read cache, ring of
	// recent batches.
	limit, limitBy, err := svcmain.ApplyMemoryLimit(*memLimit, int64(*buffered)+*cacheBytes+disklessstore.DefaultRingBytes)
	if err != nil {
		fs.Fail("%v", err)
		return svcmain.ExitUsage
	}
	svcmain.LogMemoryLimit(log, limit, limitBy)
	tel, err := fs.Telemetry("logsvc", log)
	if err != nil {
		fs.Fail("%v", err)
		return svcmain.ExitUsage
	}
	defer tel.Close()
	cli, err := fs.Etcd()
	if err != nil {
		fs.Fail("%v", err)
		return svcmain.ExitUsage
	}
	defer cli.Close()
	var bucket objstore.Bucket
	if objects != "" {
		if bucket, err = objstore.Open(context.Background(), objects); err != nil {
			fs.Fail("--object-store: %v", err)
			return svcmain.ExitUsage
		}
		defer bucket.Close()
		bucket = objstore.Instrument(bucket, tel.Registry, tel.TracerProvider)
	}
	node, err := logsvc.New(logsvc.Config{
		ID: *id, DataDir: *dataDir, ListenAddr: *addr, AdvertisedAddr: *advertised, Rack: *rack,
		Etcd: cli, EtcdPrefix: *prefix, SessionTTL: *ttl, RetentionCheckInterval: *retention, ReplicaLagTime: *lagTime,
		LeaderRebalanceInterval: *rebalance, RebuildThrottle: *throttle,
		WAL: wal.Options{NoSync: *noSync, Preallocate: *walPrealloc, DirectIO: *walDirect, FileBytes: *walFile}, MinFreeBytes: *minFree, Logger: log, ReadCacheBytes: *cacheBytes, Objects: objectsOrNil(bucket),
		Diskless: buffer.Config{MaxBatchBytes: *batchBytes, MaxDelay: *batchWait, MaxInFlight: *uploads, IdleFlush: *idleFlush, EagerFlush: *eagerFlush, MaxBufferedBytes: *buffered},
		Hybrid: hybridstore.Options{MaxPendingBytes: *pending, UploadInterval: *upEvery, UploadParallelism: *upPar, UploadBytesPerSecond: *upRate,
			Failpoint: svcmain.Failpoint(os.Getenv("STREAMLINE_FAILPOINT"))},
		TracerProvider: tel.TracerProvider, Metrics: tel.Registry,
	})

	if err != nil {
		fs.Fail("%v", err)
		return svcmain.ExitUsage
	}
	tel.AddReadyCheck(node.EtcdProblem)
	return svcmain.Run(log, node, tel.SetReady)
}

// objectsOrNil keeps a missing bucket a nil interface (no diskless).
func objectsOrNil(b objstore.Bucket) disklessstore.Objects {
	if b == nil {
		return nil
	}
	return b
}
