package uploader_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/streamline-dev/streamline/shared/meta/metatest"
	"github.com/streamline-dev/streamline/shared/objstore/objstorefs"
	"github.com/streamline-dev/streamline/uploader"
)

// TestUploaderRegistersAgainAfterLeaseLoss: when the uploader's etcd lease
// is gone (here revoked, as etcd does when it was unreachable for longer
// than the TTL), the uploader does not stop: it registers again under a new
// lease and is elected garbage collector again (issue 10: uploaders used to
// exit, and with both gone no diskless partition took writes).
func TestUploaderRegistersAgainAfterLeaseLoss(t *testing.T) {
	e := metatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fs, err := objstorefs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	up, err := uploader.New(uploader.Config{Etcd: e.Client, Objects: fs, ID: "up-1", SessionTTL: time.Second,
		GCInterval: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	registration := func() (clientv3.LeaseID, bool) {
		resp, err := e.Client.Get(ctx, "", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range resp.Kvs {
			if kv.Lease != 0 && strings.HasSuffix(string(kv.Key), "nodes/uploader/up-1") {
				return clientv3.LeaseID(kv.Lease), true
			}
		}
		return 0, false
	}
	first, ok := registration()
	if !ok {
		t.Fatal("uploader not registered after Start")
	}
	for i := range 2 { // twice: the second loss hits the re-created session
		if _, err := e.Client.Revoke(ctx, first); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			lease, ok := registration()
			if ok && lease != first && up.IsGCLeader() {
				first = lease
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("loss %d: not registered again under a new lease and elected within 20 s (registered %v, gc leader %v)", i+1, ok, up.IsGCLeader())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
