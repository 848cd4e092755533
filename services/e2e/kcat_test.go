package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/streamline-dev/streamline/services/cluster"
)

// TestKcatRoundTrip produces with librdkafka's kcat and consumes back with
// it, keys included.
func TestKcatRoundTrip(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is not installed (apt-get install kcat); .ci/run installs it")
	}
	s := cluster.StartAllInOne(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient(t, s.KafkaAddr()))
	if resp, err := adm.CreateTopic(ctx, 2, 1, nil, "kcat"); err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	var in bytes.Buffer
	const n = 500
	for i := 0; i < n; i++ {
		fmt.Fprintf(&in, "k%d:value %d\n", i%5, i)
	}
	prod := exec.CommandContext(ctx, kcat, "-b", s.KafkaAddr(), "-t", "kcat", "-P", "-K", ":", "-z", "snappy", "-X", "enable.idempotence=true")
	prod.Stdin = &in
	if out, err := prod.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v\n%s", err, out)
	}
	cons := exec.CommandContext(ctx, kcat, "-b", s.KafkaAddr(), "-t", "kcat", "-C", "-e", "-o", "beginning", "-f", "%k=%s@%p\n")
	out, err := cons.Output()
	if err != nil {
		t.Fatalf("kcat -C: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != n {
		t.Fatalf("consumed %d lines, want %d:\n%s", len(lines), n, out)
	}
	got := map[string]bool{}
	for _, l := range lines {
		kv, _, _ := strings.Cut(l, "@")
		got[kv] = true
	}
	for i := 0; i < n; i++ {
		if want := fmt.Sprintf("k%d=value %d", i%5, i); !got[want] {
			t.Fatalf("missing %q", want)
		}
	}
}
