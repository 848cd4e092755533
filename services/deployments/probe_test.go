package deployments

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/streamline-dev/streamline/shared/objstore/objstoretest"
)

// runProbe runs the probe with args and extra environment variables (the
// test's AWS_* and ROOT_* variables removed) and returns its exit code and
// output.
func runProbe(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, probeBinary(t), args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "ROOT_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), out.String()
	default:
		t.Fatalf("probe %q: %v", args, err)
		return -1, ""
	}
}

func wantExit(t *testing.T, want int, env []string, args ...string) {
	t.Helper()
	if code, out := runProbe(t, env, args...); code != want {
		t.Errorf("probe %s: exit %d, want %d; output:\n%s", strings.Join(args, " "), code, want, out)
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestProbeS3Bucket runs the probe's bucket check against versitygw, which
// enforces Signature V4: a missing bucket fails the check, --create makes
// it, and wrong credentials fail.
func TestProbeS3Bucket(t *testing.T) {
	endpoint, access, secret := objstoretest.StartVersityGW(t)
	aws := []string{"AWS_ACCESS_KEY_ID=" + access, "AWS_SECRET_ACCESS_KEY=" + secret}
	root := []string{"ROOT_ACCESS_KEY=" + access, "ROOT_SECRET_KEY=" + secret}

	wantExit(t, 0, aws, "s3-bucket", endpoint, objstoretest.BucketName)
	wantExit(t, 1, aws, "s3-bucket", endpoint, "probe-made")
	wantExit(t, 0, aws, "s3-bucket", "--create", endpoint, "probe-made")
	wantExit(t, 0, aws, "s3-bucket", "--create", endpoint, "probe-made") // exists: still fine
	wantExit(t, 0, root, "s3-bucket", "--timeout=5s", endpoint+"/", "probe-made")
	wantExit(t, 1, []string{"AWS_ACCESS_KEY_ID=" + access, "AWS_SECRET_ACCESS_KEY=wrong"}, "s3-bucket", endpoint, "probe-made")
	wantExit(t, 1, nil, "s3-bucket", endpoint, "probe-made") // no credentials
	wantExit(t, 1, aws, "s3-bucket", "http://"+closedAddr(t), "probe-made")
	wantExit(t, 2, aws, "s3-bucket", endpoint)
}

// TestProbeKafka answers with a Kafka server (kfake) and fails on a port
// that is closed or speaks something else.
func TestProbeKafka(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wantExit(t, 0, nil, "kafka", c.ListenAddrs()[0])
	wantExit(t, 1, nil, "kafka", closedAddr(t))

	web := httptest.NewServer(http.NotFoundHandler())
	defer web.Close()
	wantExit(t, 1, nil, "kafka", "--timeout", "2s", strings.TrimPrefix(web.URL, "http://"))
}

func TestProbeTCPAndHTTP(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ok.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	defer bad.Close()

	wantExit(t, 0, nil, "http", ok.URL+"/health")
	wantExit(t, 1, nil, "http", bad.URL)
	wantExit(t, 1, nil, "http", "http://"+closedAddr(t))
	wantExit(t, 0, nil, "tcp", strings.TrimPrefix(ok.URL, "http://"))
	wantExit(t, 1, nil, "tcp", closedAddr(t))

	wantExit(t, 0, nil, "--help")
	wantExit(t, 2, nil)
	wantExit(t, 2, nil, "nonsense")
	wantExit(t, 2, nil, "tcp", "--no-such-flag", "127.0.0.1:1")
}

// TestProbeMetric serves a real Prometheus registry: probe metric sums a
// series over its labels and compares it with the minimum.
func TestProbeMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamline_merge_passes_total", Help: "passes"}, []string{"result"})
	reg.MustRegister(c)
	c.WithLabelValues("ok").Add(2)
	c.WithLabelValues("error with space").Add(1)
	web := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer web.Close()
	url := web.URL + "/metrics"
	wantExit(t, 0, nil, "metric", url, "streamline_merge_passes_total", "3")
	wantExit(t, 1, nil, "metric", url, "streamline_merge_passes_total", "4")
	wantExit(t, 1, nil, "metric", url, "streamline_merge_passes", "0") // a prefix is not the series
	wantExit(t, 1, nil, "metric", "http://"+closedAddr(t)+"/metrics", "x", "0")
	wantExit(t, 2, nil, "metric", url, "streamline_merge_passes_total")
}
