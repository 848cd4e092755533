// Command uploader runs one uploader instance (registration and health only
// in this release; see package uploader).
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

	"github.com/streamline-dev/streamline/shared/envflag"
	"github.com/streamline-dev/streamline/shared/logging"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/uploader"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("uploader", flag.ContinueOnError)
	var (
		id         = fs.String("id", "", "uploader id in etcd (default: generated)")
		addr       = fs.String("grpc-addr", "127.0.0.1:9096", "gRPC listen address")
		advertised = fs.String("advertised-grpc-addr", "", "address log-service nodes dial (default: the listen address)")
		etcd       = fs.String("etcd-endpoints", "http://127.0.0.1:2379", "comma-separated etcd endpoints")
		prefix     = fs.String("etcd-prefix", meta.DefaultPrefix, "etcd key prefix")
		ttl        = fs.Duration("session-ttl", 10*time.Second, "etcd lease TTL of this uploader's registration")
		level      = fs.String("log-level", "info", "debug, info, warn or error")
	)
	fs.Usage = envflag.Usage(fs, "uploader: a Streamline uploader instance")
	if err := envflag.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "uploader:", err)
		return 2
	}
	log, err := logging.New(os.Stderr, *level)
	if err != nil {
		fmt.Fprintln(os.Stderr, "uploader: --log-level:", err)
		return 2
	}
	cli, err := meta.Dial(*etcd)
	if err != nil {
		fmt.Fprintln(os.Stderr, "uploader: --etcd-endpoints:", err)
		return 2
	}
	defer cli.Close()
	u, err := uploader.New(uploader.Config{ID: *id, ListenAddr: *addr, AdvertisedAddr: *advertised, Etcd: cli, EtcdPrefix: *prefix, SessionTTL: *ttl, Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := u.Start(ctx); err != nil {
		log.Error("start failed", "err", err)
		return 1
	}
	select {
	case <-ctx.Done():
	case <-u.Done():
		log.Error("etcd lease lost")
	}
	if err := u.Close(); err != nil {
		log.Error("close", "err", err)
		return 1
	}
	return 0
}
