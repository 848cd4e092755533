package objstores3_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamline-dev/streamline/shared/objstore"
	"github.com/streamline-dev/streamline/shared/objstore/objstores3"
	"github.com/streamline-dev/streamline/shared/objstore/objstoretest"
)

// behindProxy starts versitygw with a FaultProxy in front of it.
func behindProxy(t *testing.T) (*objstoretest.FaultProxy, server) {
	srv := versitygw(t)
	proxy, endpoint := objstoretest.StartFaultProxy(t, srv.endpoint)
	return proxy, server{endpoint, srv.access, srv.secret}
}

func retries(attempts int, maxBackoff time.Duration) func(*objstores3.Options) {
	return func(o *objstores3.Options) {
		o.MaxAttempts = attempts
		o.MaxBackoff = maxBackoff
		o.DisableRetryRateLimit = true
	}
}

// S3 throttles for about 2 s, then recovers: Put and Get ride it out on
// retries alone, within their attempt budget.
func TestSlowDownWindowThenRecovery(t *testing.T) {
	proxy, srv := behindProxy(t)
	const attempts = 30
	b := newBucket(t, srv, "", retries(attempts, 300*time.Millisecond))
	data := objstoretest.RandomBytes(1, 100<<10)

	proxy.InjectFor(objstoretest.SlowDown, 2*time.Second)
	start := time.Now()
	if err := b.Put(t.Context(), "k", data); err != nil {
		t.Fatalf("Put through 2s of SlowDown: %v", err)
	}
	took, putReqs := time.Since(start), proxy.Requests()
	if took < 2*time.Second || putReqs > attempts {
		t.Fatalf("Put took %v and %d requests; want >= 2s and <= %d", took, putReqs, attempts)
	}
	t.Logf("Put: %v, %d requests, %d SlowDown", took, putReqs, proxy.Injected(objstoretest.SlowDown))

	proxy.InjectFor(objstoretest.SlowDown, 2*time.Second)
	got, err := b.Get(t.Context(), "k")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get through 2s of SlowDown: %d bytes, %v", len(got), err)
	}
	if n := proxy.Requests() - putReqs; n > attempts {
		t.Fatalf("Get made %d requests, budget %d", n, attempts)
	}
}

// Throttled beyond the budget, Put fails, and says why; nothing is stored.
func TestSlowDownBeyondBudgetFails(t *testing.T) {
	proxy, srv := behindProxy(t)
	b := newBucket(t, srv, "", retries(3, 50*time.Millisecond), suiteOptions)
	proxy.InjectFor(objstoretest.SlowDown, time.Hour)

	for _, size := range []int{1 << 10, objstoretest.LargeObjectSize} { // single and multipart
		before := proxy.Requests()
		err := b.Put(t.Context(), "k", objstoretest.RandomBytes(2, size))
		if err == nil || !strings.Contains(err.Error(), "SlowDown") {
			t.Fatalf("Put(%d bytes) under endless SlowDown: %v; want an error naming SlowDown", size, err)
		}
		// Multipart: 3 tries of CreateMultipartUpload, nothing more.
		if n := proxy.Requests() - before; n != 3 {
			t.Errorf("Put(%d bytes) made %d requests, want exactly 3 attempts", size, n)
		}
	}
	proxy.Reset()
	if _, err := b.Get(t.Context(), "k"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("after failed Puts, Get: %v; want ErrNotFound", err)
	}
}

// With the server gone, every call fails within its budget: no false success.
func TestServerDownFails(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: connection refused
	b := newBucket(t, server{"http://" + addr, "a", "b"}, "", retries(3, 20*time.Millisecond))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := b.Put(ctx, "k", []byte("v")); err == nil {
		t.Fatal("Put to a dead server succeeded")
	}
	if _, err := b.Get(ctx, "k"); err == nil || errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Get from a dead server: %v; want a transport error, not ErrNotFound", err)
	}
	if ctx.Err() != nil {
		t.Fatal("retries were not bounded by MaxAttempts")
	}
}

// Connections reset before the request reaches the server, or after the
// server has handled it (the answer is lost): both are retried, and the
// retried Put is harmless because a Put replaces the whole object.
func TestDroppedConnections(t *testing.T) {
	proxy, srv := behindProxy(t)
	b := newBucket(t, srv, "", retries(5, 50*time.Millisecond), suiteOptions)
	for _, f := range []objstoretest.Fault{objstoretest.DropRequest, objstoretest.DropResponse} {
		for _, size := range []int{10 << 10, objstoretest.LargeObjectSize} {
			data := objstoretest.RandomBytes(uint64(size), size)
			before := proxy.Injected(f)
			proxy.InjectNext(f, 2)
			if err := b.Put(t.Context(), "k", data); err != nil {
				t.Fatalf("%v: Put(%d bytes): %v", f, size, err)
			}
			proxy.InjectNext(f, 2)
			if got, err := b.Get(t.Context(), "k"); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%v: Get: %d bytes, %v", f, len(got), err)
			}
			if n := proxy.Injected(f) - before; n != 4 {
				t.Fatalf("%v: %d faults injected, want 4", f, n)
			}
		}
	}
}

// A server that stops answering costs one attempt (AttemptTimeout), not the
// whole call.
func TestHungRequestsAreRetried(t *testing.T) {
	proxy, srv := behindProxy(t)
	b := newBucket(t, srv, "", retries(4, 20*time.Millisecond), func(o *objstores3.Options) {
		o.AttemptTimeout = 300 * time.Millisecond
	})
	proxy.InjectNext(objstoretest.Hang, 2)
	start := time.Now()
	if err := b.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatalf("Put after 2 hung attempts: %v", err)
	}
	if took := time.Since(start); took < 600*time.Millisecond || took > 5*time.Second {
		t.Fatalf("Put took %v; want two 300ms timeouts then success", took)
	}
	proxy.InjectFor(objstoretest.Hang, time.Hour)
	if _, err := b.Get(t.Context(), "k"); err == nil {
		t.Fatal("Get from a hung server succeeded")
	}
}

// A multipart upload cut short (here by the caller's context, canceled
// mid-parts) is aborted: no object, no parts left on the server.
func TestMultipartAbortedOnFailure(t *testing.T) {
	proxy, srv := behindProxy(t)
	b := newBucket(t, srv, "", suiteOptions)
	// Each request takes 300 ms at the proxy. The context is canceled as
	// soon as a part request reaches the proxy: CreateMultipartUpload has
	// been answered (parts follow it) and the parts are in flight. A fixed
	// deadline instead could fall during the create under load, and an
	// upload created unseen cannot be aborted by its id.
	proxy.SetLatency(objstoretest.Fixed(300 * time.Millisecond))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	base := proxy.Requests()
	put := make(chan struct{})
	go func() {
		for proxy.Requests() < base+2 {
			select {
			case <-put:
				return
			case <-time.After(time.Millisecond):
			}
		}
		cancel()
	}()
	err := b.Put(ctx, "big", objstoretest.RandomBytes(3, objstoretest.LargeObjectSize))
	close(put)
	if err == nil {
		t.Fatal("Put past its deadline succeeded")
	}
	proxy.Reset()
	if _, err := b.Size(t.Context(), "big"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Size after aborted Put: %v; want ErrNotFound", err)
	}
	ups, err := b.Client().ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: new(objstoretest.BucketName)})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Fatalf("%d multipart uploads left behind", len(ups.Uploads))
	}
}

// The large object really goes up in parts: create + 2 parts + complete.
func TestMultipartRequests(t *testing.T) {
	proxy, srv := behindProxy(t)
	b := newBucket(t, srv, "", suiteOptions)
	if err := b.Put(t.Context(), "big", objstoretest.RandomBytes(4, objstoretest.LargeObjectSize)); err != nil {
		t.Fatal(err)
	}
	if n := proxy.Requests(); n != 4 {
		t.Fatalf("%d requests for a 7 MiB Put with 5 MiB parts, want 4", n)
	}
}

// versitygw checks SigV4 signatures: a wrong secret is refused, so the
// suites above prove our requests are signed correctly, through the proxy too.
func TestWrongCredentialsRefused(t *testing.T) {
	_, srv := behindProxy(t)
	srv.secret = "wrong"
	b := newBucket(t, srv, "", retries(1, 0))
	err := b.Put(t.Context(), "k", []byte("v"))
	if err == nil || !strings.Contains(err.Error(), "SignatureDoesNotMatch") {
		t.Fatalf("Put with a wrong secret: %v; want SignatureDoesNotMatch", err)
	}
}

// A download that breaks off midway is retried by Get itself: the SDK has
// returned by then, and its retries are over.
func TestCutDownloadsAreRetried(t *testing.T) {
	proxy, srv := behindProxy(t)
	b := newBucket(t, srv, "", retries(4, 20*time.Millisecond))
	data := objstoretest.RandomBytes(5, 1<<20)
	if err := b.Put(t.Context(), "k", data); err != nil {
		t.Fatal(err)
	}
	proxy.InjectNext(objstoretest.CutResponse, 2)
	if got, err := b.Get(t.Context(), "k"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get after 2 cut downloads: %d bytes, %v", len(got), err)
	}
	proxy.InjectNext(objstoretest.CutResponse, 2)
	if got, err := b.GetRange(t.Context(), "k", 1000, 200<<10); err != nil || !bytes.Equal(got, data[1000:1000+200<<10]) {
		t.Fatalf("GetRange after 2 cut downloads: %d bytes, %v", len(got), err)
	}
	proxy.InjectFor(objstoretest.CutResponse, time.Hour)
	if _, err := b.Get(t.Context(), "k"); err == nil {
		t.Fatal("Get with every download cut succeeded")
	}
	if n := proxy.Injected(objstoretest.CutResponse); n != 2+2+4 {
		t.Fatalf("%d cut responses, want 8 (the last Get within its 4 attempts)", n)
	}
}
