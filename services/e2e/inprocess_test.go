package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamline-dev/streamline/services/cluster"
)

// TestAllInOneServiceChannels runs a local and a diskless topic through an
// all-in-one with its default in-process channels between the gateway,
// the log service and the uploader, and with loopback gRPC between them
// (--loopback-grpc): every acknowledged record reads back byte for byte
// at its offset either way, DescribeLogDirs (a unary call to the log
// service) counts the bytes, and the etcd health monitor reports the
// embedded member (in-process, the services' etcd client is etcd's
// v3client, which names none).
func TestAllInOneServiceChannels(t *testing.T) {
	for name, opts := range map[string][]cluster.Option{
		"in-process": nil,
		"loopback":   {cluster.WithLoopbackRPC()},
	} {
		t.Run(name, func(t *testing.T) {
			s := cluster.StartAllInOne(t, opts...)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			adm := kadm.NewClient(newClient(t, s.KafkaAddr()))
			for _, mode := range []string{"local", "diskless"} {
				topic := "channels-" + mode
				resp, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{"storage.mode": kmsg.StringPtr(mode)}, topic)
				if err != nil || resp.Err != nil {
					t.Fatalf("create %s: %v %v", topic, err, resp.Err)
				}
				prod := newClient(t, s.KafkaAddr(), kgo.DefaultProduceTopic(topic))
				acked := produceAll(ctx, t, prod, 3000, func(i int) *kgo.Record {
					return &kgo.Record{Key: []byte(strconv.Itoa(i % 31)), Value: []byte("value-" + strconv.Itoa(i))}
				})
				consumeAndCompare(ctx, t, s.KafkaAddr(), topic, acked)
				dirs, err := adm.DescribeAllLogDirs(ctx, nil)
				if err != nil {
					t.Fatalf("DescribeLogDirs: %v", err)
				}
				var size int64
				dirs.Each(func(d kadm.DescribedLogDir) {
					for _, p := range d.Topics[topic] {
						size += p.Size
					}
				})
				if size <= 0 {
					t.Fatalf("%s: DescribeLogDirs reports %d bytes", topic, size)
				}
			}
			// Either way the etcd health monitor reports the embedded
			// member: in-process it polls through a dialed client
			// (logsvc.Config.EtcdHealth), since the services' in-process
			// etcd client names no members.
			if size := gathered(t, s.Metrics(), "streamline_etcd_db_size_bytes", map[string]string{"endpoint": s.EtcdEndpoint()}); size <= 0 {
				t.Fatalf("streamline_etcd_db_size_bytes{endpoint=%q} = %v", s.EtcdEndpoint(), size)
			}
			// In-process, nothing in the process connects to the log
			// service's gRPC port; over loopback, the gateway does.
			_, port, _ := net.SplitHostPort(s.LogServiceAddr())
			conns := establishedTo(t, port)
			if name == "in-process" && conns != 0 {
				t.Fatalf("%d TCP connections to the log service's gRPC port %s; want none in-process", conns, port)
			}
			if name == "loopback" && conns == 0 {
				t.Fatalf("no TCP connection to the log service's gRPC port %s with --loopback-grpc", port)
			}
		})
	}
}

// establishedTo counts the established TCP connections of this machine to
// 127.0.0.1:port (port decimal), from /proc/net/tcp.
func establishedTo(t *testing.T, port string) int {
	t.Helper()
	raw, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatalf("reading the connection table: %v", err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	remote := fmt.Sprintf("0100007F:%04X", p) // 127.0.0.1, as the kernel prints it
	n := 0
	for _, line := range strings.Split(string(raw), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 3 && f[2] == remote && f[3] == "01" { // 01: ESTABLISHED
			n++
		}
	}
	return n
}
