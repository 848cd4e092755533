// Package conformance runs logsvc's storage conformance suite
// (logsvc/storage/storagetest) against engines that need other services:
// the diskless engine needs etcd, an object store and a live uploader,
// and the logsvc module cannot import the uploader. Everything here is
// real: an embedded etcd, a directory object store and the uploader
// service over loopback gRPC.
package conformance

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/streamline-dev/streamline/logsvc/buffer"
	"github.com/streamline-dev/streamline/logsvc/storage"
	"github.com/streamline-dev/streamline/logsvc/storage/disklessstore"
	"github.com/streamline-dev/streamline/logsvc/storage/storagetest"
	uploadv1 "github.com/streamline-dev/streamline/proto/gen/streamline/upload/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	"github.com/streamline-dev/streamline/shared/objstore/objstorefs"
	"github.com/streamline-dev/streamline/shared/rpc"
	"github.com/streamline-dev/streamline/uploader"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// startUploader runs a real uploader and returns a client of it.
func startUploader(ctx context.Context, t *testing.T, cfg uploader.Config) uploadv1.UploadServiceClient {
	t.Helper()
	up, err := uploader.New(cfg)
	if err == nil {
		err = up.Start(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	cc, err := grpc.NewClient(up.Addr(), rpc.DialOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return uploadv1.NewUploadServiceClient(cc)
}

func TestDisklessEngineConformance(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	etcd := metatest.Start(t)
	bucket, err := objstorefs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	client := startUploader(ctx, t, uploader.Config{Etcd: etcd.Client, Objects: bucket, Logger: quiet})
	store := meta.NewStore(etcd.Client, "")

	open := func(t *testing.T) storage.Engine {
		e := disklessstore.New(disklessstore.Options{
			NodeID: "conformance", Store: store, Objects: bucket,
			Uploaders: func() []uploadv1.UploadServiceClient { return []uploadv1.UploadServiceClient{client} },
			Buffer:    buffer.Config{MaxDelay: 5 * time.Millisecond}, Logger: quiet,
		})
		t.Cleanup(func() { e.Close() })
		return e
	}
	storagetest.Run(t, storagetest.Harness{
		New: open,
		Reopen: func(t *testing.T, e storage.Engine) storage.Engine {
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			return open(t)
		},
	})
}
