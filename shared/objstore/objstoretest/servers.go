package objstoretest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/streamline-dev/streamline/shared/childproc"
	"github.com/streamline-dev/streamline/shared/freeport"
	"github.com/streamline-dev/streamline/shared/objstore/objstores3"
)

// BucketName is the bucket the Start* helpers create.
const BucketName = "streamline-test"

// StartGofakes3 serves gofakes3 (MIT, in memory, up in a millisecond) on a
// loopback port until the test ends, with BucketName created, and returns
// its endpoint. It accepts any credentials. Fast, and good for most tests;
// StartVersityGW is the stricter, real server.
func StartGofakes3(t testing.TB) (endpoint string) {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(BucketName); err != nil {
		t.Fatal(err)
	}
	faker := gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog()))
	srv := httptest.NewServer(faker.Server())
	t.Cleanup(srv.Close)
	return srv.URL
}

// VersityGWVersion is the versitygw release the Makefile's tools target
// installs; StartVersityGW needs that binary.
const VersityGWVersion = "v1.8.0"

// StartVersityGW runs versitygw (Apache-2.0; an S3 gateway that enforces
// SigV4 credentials, real ranges, paging and multipart) with its posix
// backend in a temporary directory on a free loopback port until the test
// ends, creates BucketName, and returns the endpoint and credentials.
//
// The binary comes from PATH, $GOBIN or $(go env GOPATH)/bin. Without it
// the test fails, never skips: a suite that silently stops running is worse
// than a red one. Install it with `make tools`.
func StartVersityGW(t testing.TB) (endpoint, accessKey, secretKey string) {
	t.Helper()
	bin, err := findVersityGW()
	if err != nil {
		t.Fatalf("versitygw %s is needed by this test and was not found (%v): run `make tools` "+
			"(or CGO_ENABLED=0 go install github.com/versity/versitygw/cmd/versitygw@%s)", VersityGWVersion, err, VersityGWVersion)
	}
	root := t.TempDir()
	accessKey, secretKey = "streamline-test", randomHex(20)
	// A free port can be taken between our probe and versitygw's listen;
	// then the process exits and we try another.
	for try := 1; ; try++ {
		endpoint, err = runVersityGW(t, bin, root, accessKey, secretKey)
		if err == nil {
			break
		}
		if try == 3 {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := objstores3.CreateBucket(ctx, objstores3.Options{
		Bucket: BucketName, Endpoint: endpoint, PathStyle: true,
		AccessKeyID: accessKey, SecretAccessKey: secretKey,
	}); err != nil {
		t.Fatalf("versitygw: %v", err)
	}
	return endpoint, accessKey, secretKey
}

// runVersityGW starts one versitygw process and waits until it answers HTTP.
func runVersityGW(t testing.TB, bin, root, access, secret string) (string, error) {
	addr, err := freePort()
	if err != nil {
		return "", err
	}
	var out lockedBuffer
	cmd := exec.Command(bin, "--port", addr, "--quiet", "posix", root)
	// Credentials through the environment keep them out of `ps`.
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+access, "ROOT_SECRET_KEY="+secret)
	cmd.Stdout, cmd.Stderr = &out, &out
	childproc.DieWithParent(cmd) // no server outlives its test holding a port
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("starting versitygw: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}

	endpoint := "http://" + addr
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		// Any HTTP answer (403 for this anonymous request) means it serves.
		if resp, err := client.Get(endpoint + "/"); err == nil {
			resp.Body.Close()
			t.Cleanup(stop)
			return endpoint, nil
		}
		select {
		case <-exited:
			return "", fmt.Errorf("versitygw exited at start: %s", out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return "", fmt.Errorf("versitygw did not answer on %s within 15s: %s", addr, out.String())
		}
	}
}

func findVersityGW() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	var dirs []string
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for gp := range strings.SplitSeq(strings.TrimSpace(string(out)), string(os.PathListSeparator)) {
			dirs = append(dirs, filepath.Join(gp, "bin"))
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, "versitygw")
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("not on PATH nor in %s", strings.Join(dirs, ", "))
}

func freePort() (string, error) { return freeport.Addr() }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// lockedBuffer collects a child's output, written by exec's copy goroutine
// and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.TrimSpace(l.b.String())
}
