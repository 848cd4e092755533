// Command uploader runs one uploader instance (registration and health only
// in this release; see package uploader). Every flag can also be set as
// STREAMLINE_<FLAG>.
package main

import (
	"context"
	"os"
	"time"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/objstore"
	_ "github.com/streamline-dev/streamline/shared/objstore/objstorefs" // file:// URLs
	_ "github.com/streamline-dev/streamline/shared/objstore/objstores3" // s3:// URLs
	"github.com/streamline-dev/streamline/shared/svcmain"
	"github.com/streamline-dev/streamline/uploader"
	"github.com/streamline-dev/streamline/uploader/gc"
	"github.com/streamline-dev/streamline/uploader/merge"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := svcmain.NewFlags("uploader", "uploader: a Streamline uploader instance", true)
	var (
		id         = fs.String("id", "", "uploader id in etcd (default: generated)")
		addr       = fs.String("grpc-addr", "127.0.0.1:9096", "gRPC listen address")
		advertised = fs.String("advertised-grpc-addr", "", "address log-service nodes dial (default: the listen address)")
		prefix     = fs.String("etcd-prefix", meta.DefaultPrefix, "etcd key prefix")
		ttl        = fs.Duration("session-ttl", 10*time.Second, "etcd lease TTL of this uploader's registration")
		objectsURL = fs.ObjectStore("object store to write flushes to: file:///dir or s3://bucket/prefix?endpoint=...&region=... (empty: none; uploads are refused)")
		gcGrace    = fs.Duration("gc-grace", gc.DefaultGrace, "age below which an unreferenced object is never garbage-collected; commits of objects older than half of it are refused (same value on every uploader)")
		gcInterval = fs.Duration("gc-interval", gc.DefaultInterval, "time between garbage-collection passes of the elected uploader")
		gcLinger   = fs.Duration("gc-linger", gc.DefaultLinger, "how long an object past its grace must have been seen unreferenced (replaced by a merge, dropped by retention) before it is deleted: readers may still hold its coordinates")
		spoolDir   = fs.String("spool-dir", "", "directory where segments uploaded by hybrid topics are spooled while they arrive (default: the system temporary directory)")
		_          = fs.HTTPAddr("") // served by fs.Telemetry
		mergeCfg   uploader.MergeConfig
	)
	mergeCfg.AddFlags(fs.FlagSet, merge.DefaultParallelism)
	if code, ok := fs.Parse(args); !ok {
		return code
	}
	if err := mergeCfg.Validate(); err != nil {
		fs.Fail("%v", err)
		return svcmain.ExitUsage
	}
	objects, err := objectsURL()
	if err != nil {
		fs.Fail("%v", err)
		return svcmain.ExitUsage
	}
	mergeCfg.Failpoint = svcmain.Failpoint(os.Getenv("STREAMLINE_FAILPOINT"))
	log, err := fs.Logger()
	if err != nil {
		fs.Fail("%v", err)
		return svcmain.ExitUsage
	}
	tel, err := fs.Telemetry("uploader", log)
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
	cfg := uploader.Config{ID: *id, ListenAddr: *addr, AdvertisedAddr: *advertised, Etcd: cli, EtcdPrefix: *prefix, SessionTTL: *ttl,
		SpoolDir: *spoolDir, GCGrace: *gcGrace, GCInterval: *gcInterval, GCLinger: *gcLinger, Merge: mergeCfg, Logger: log, TracerProvider: tel.TracerProvider, Metrics: tel.Registry}
	if objects != "" {
		bucket, err := objstore.Open(context.Background(), objects)
		if err != nil {
			fs.Fail("--object-store: %v", err)
			return svcmain.ExitUsage
		}
		defer bucket.Close()
		cfg.Objects = objstore.Instrument(bucket, tel.Registry, tel.TracerProvider)
	}
	u, err := uploader.New(cfg)
	if err != nil {
		fs.Fail("%v", err)
		return svcmain.ExitUsage
	}
	return svcmain.Run(log, u, tel.SetReady)
}
