// Command logsvc runs one log-service node: it leads the partitions etcd
// assigns it and serves the gRPC LogService to gateways. Every flag can also
// be set as STREAMLINE_<FLAG> (e.g. STREAMLINE_DATA_DIR).
package main

import (
	"os"
	"time"

	"github.com/streamline-dev/streamline/logsvc"
	"github.com/streamline-dev/streamline/logsvc/wal"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/svcmain"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := svcmain.NewFlags("logsvc", "logsvc: a Streamline log-service node", true)
	var (
		id         = fs.String("id", "", "node id in etcd (default: kept in <data-dir>/node-id, generated on first start)")
		dataDir    = fs.String("data-dir", "./logsvc-data", "directory for the WAL and partition segments")
		addr       = fs.String("grpc-addr", "127.0.0.1:9093", "gRPC LogService listen address")
		advertised = fs.String("advertised-grpc-addr", "", "address gateways dial (default: the listen address)")
		prefix     = fs.String("etcd-prefix", meta.DefaultPrefix, "etcd key prefix")
		ttl        = fs.Duration("session-ttl", 10*time.Second, "etcd lease TTL of this node's registration")
		retention  = fs.Duration("retention-check-interval", 5*time.Minute, "how often retention.ms/retention.bytes are enforced")
		noSync     = fs.Bool("unsafe-no-fsync", false, "skip WAL fsync (benchmarks only: acknowledged data may be lost on a crash)")
	)
	if code, ok := fs.Parse(args); !ok {
		return code
	}
	log, err := fs.Logger()
	if err != nil {
		fs.Fail("%v", err)
		return svcmain.ExitUsage
	}
	cli, err := fs.Etcd()
	if err != nil {
		fs.Fail("%v", err)
		return svcmain.ExitUsage
	}
	defer cli.Close()
	node, err := logsvc.New(logsvc.Config{
		ID: *id, DataDir: *dataDir, ListenAddr: *addr, AdvertisedAddr: *advertised,
		Etcd: cli, EtcdPrefix: *prefix, SessionTTL: *ttl, RetentionCheckInterval: *retention,
		WAL: wal.Options{NoSync: *noSync}, Logger: log,
	})
	if err != nil {
		fs.Fail("%v", err)
		return svcmain.ExitUsage
	}
	return svcmain.Run(log, node, nil)
}
