package objstores3_test

import (
	"context"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/shared/objstore"
	"github.com/streamline-dev/streamline/shared/objstore/objstores3"
	"github.com/streamline-dev/streamline/shared/objstore/objstoretest"
)

// server is an S3 endpoint with its credentials.
type server struct{ endpoint, access, secret string }

func gofakes3(t testing.TB) server {
	return server{objstoretest.StartGofakes3(t), "any", "any"}
}

func versitygw(t testing.TB) server {
	e, a, s := objstoretest.StartVersityGW(t)
	return server{e, a, s}
}

// suiteOptions make the conformance suite reach the multipart and paging
// code: its large object is 7 MiB and it lists 20+ keys.
func suiteOptions(o *objstores3.Options) {
	o.MultipartThreshold = 6 << 20
	o.PartSize = objstores3.MinPartSize
	o.ListPageSize = 7
}

// newBucket opens BucketName on srv, under prefix if not empty.
func newBucket(t testing.TB, srv server, prefix string, opts ...func(*objstores3.Options)) *objstores3.Bucket {
	t.Helper()
	o := objstores3.Options{
		Bucket: objstoretest.BucketName, Prefix: prefix,
		Endpoint: srv.endpoint, PathStyle: true, Region: "us-east-1",
		AccessKeyID: srv.access, SecretAccessKey: srv.secret,
	}
	for _, f := range opts {
		f(&o)
	}
	b, err := objstores3.New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestConformanceGofakes3(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) objstore.Bucket {
		return newBucket(t, gofakes3(t), "", suiteOptions) // a fresh server per case
	})
}

func TestConformanceVersityGW(t *testing.T) {
	srv := versitygw(t)
	objstoretest.Run(t, func(t *testing.T) objstore.Bucket {
		return newBucket(t, srv, t.Name(), suiteOptions) // a fresh prefix per case
	})
}

// The whole suite through the proxy, with a few requests answered SlowDown
// or dropped: retries must hide them completely.
func TestConformanceVersityGWWithFaults(t *testing.T) {
	srv := versitygw(t)
	proxy, endpoint := objstoretest.StartFaultProxy(t, srv.endpoint)
	proxy.InjectRate(objstoretest.SlowDown, 0.05)
	proxy.InjectRate(objstoretest.DropRequest, 0.02)
	faulty := server{endpoint, srv.access, srv.secret}
	objstoretest.Run(t, func(t *testing.T) objstore.Bucket {
		return newBucket(t, faulty, t.Name(), suiteOptions, func(o *objstores3.Options) {
			o.MaxAttempts = 8
			o.MaxBackoff = 100 * time.Millisecond
			o.DisableRetryRateLimit = true
		})
	})
	t.Logf("%d requests, %d SlowDown, %d dropped", proxy.Requests(),
		proxy.Injected(objstoretest.SlowDown), proxy.Injected(objstoretest.DropRequest))
	if proxy.Injected(objstoretest.SlowDown) == 0 {
		t.Error("no SlowDown was injected: the test proved nothing")
	}
}

func TestOpenURL(t *testing.T) {
	srv := gofakes3(t)
	b, err := objstore.Open(t.Context(),
		"s3://"+objstoretest.BucketName+"/some/prefix?endpoint="+srv.endpoint+"&region=us-east-1&path_style=true&page_size=2",
		objstore.WithStaticCredentials("any", "any"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	// The prefix is applied: the key is some/prefix/k in the bucket.
	raw := newBucket(t, srv, "")
	if got, err := raw.Get(t.Context(), "some/prefix/k"); err != nil || string(got) != "v" {
		t.Fatalf("raw Get = %q, %v", got, err)
	}
}

// Without static credentials the SDK's default chain is used: here the
// standard AWS_* variables, checked by a server that enforces them.
func TestEnvironmentCredentials(t *testing.T) {
	srv := versitygw(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.secret)
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	b, err := objstore.Open(t.Context(), "s3://"+objstoretest.BucketName+"?path_style=true&endpoint="+srv.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatalf("Put with credentials from the environment: %v", err)
	}
}
