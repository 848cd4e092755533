package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamline-dev/streamline/services/cluster"
)

// TestDisklessRoundTrip produces to a diskless topic of the all-in-one
// (object store: a local directory) with franz-go and kcat, reads every
// record back at its acknowledged offset, and checks the log service wrote
// no log bytes of the topic to its disk: the data is in objects.
func TestDisklessRoundTrip(t *testing.T) {
	dataDir := t.TempDir()
	s := cluster.StartAllInOne(t, cluster.WithDataDir(dataDir))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const topic = "diskless"
	adm := kadm.NewClient(newClient(t, s.KafkaAddr()))
	resp, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{"storage.mode": kmsg.StringPtr("diskless")}, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	rc, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := rc.On(topic, nil); err != nil || !hasConfig(c.Configs, "storage.mode", "diskless") {
		t.Fatalf("storage.mode not described as diskless: %v %+v", err, c)
	}

	prod := newClient(t, s.KafkaAddr(), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(5*time.Millisecond))
	acked := produceAll(ctx, t, prod, 20000, func(i int) *kgo.Record {
		r := &kgo.Record{Key: []byte(fmt.Sprint(i % 13)), Value: []byte(fmt.Sprintf("diskless-%d-%s", i, bytes.Repeat([]byte("z"), i%40)))}
		if i%5 == 0 {
			r.Headers = []kgo.RecordHeader{{Key: "n", Value: []byte(fmt.Sprint(i))}}
		}
		return r
	})
	consumeAndCompare(ctx, t, s.KafkaAddr(), topic, acked)

	// kcat (librdkafka) on the same topic.
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is not installed (apt-get install kcat)")
	}
	prodCmd := exec.CommandContext(ctx, kcat, "-b", s.KafkaAddr(), "-t", topic, "-P", "-K", ":", "-p", "0")
	prodCmd.Stdin = strings.NewReader("k:from-kcat\n")
	if out, err := prodCmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v %s", err, out)
	}
	out, err := exec.CommandContext(ctx, kcat, "-b", s.KafkaAddr(), "-t", topic, "-C", "-e", "-p", "0", "-o", "-1", "-f", "%k=%s\n").Output()
	if err != nil || strings.TrimSpace(string(out)) != "k=from-kcat" {
		t.Fatalf("kcat -C: %v %q", err, out)
	}

	// Zero bytes of diskless log data on the log service's disk: no
	// partition directory for the topic exists.
	tp, _ := adm.ListTopics(ctx, topic)
	tid := tp[topic].ID
	id := hex.EncodeToString(tid[:])
	matches, _ := filepath.Glob(filepath.Join(dataDir, "logsvc", "partitions", id+"-*"))
	if len(matches) != 0 {
		t.Fatalf("diskless topic has local partition data: %v", matches)
	}
	objs := 0
	_ = filepath.Walk(filepath.Join(dataDir, "objects"), func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			objs++
		}
		return nil
	})
	if objs == 0 {
		t.Fatal("no objects were written")
	}
	t.Logf("%d objects hold the diskless topic", objs)
}

func hasConfig(cs []kadm.Config, key, value string) bool {
	for _, c := range cs {
		if c.Key == key && c.Value != nil && *c.Value == value {
			return true
		}
	}
	return false
}
