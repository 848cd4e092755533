package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamline-dev/streamline/services/cluster"
)

// TestTraceDisklessProduce produces one record to a diskless topic of an
// in-process all-in-one traced by a tracetest.SpanRecorder and checks that
// it makes one connected trace across gateway, log service and uploader:
// the Kafka request span is the root, and under it, each the child of the
// one before, the produce-stream message (gateway client and logsvc server
// spans), the batch's wait in the diskless buffer, the flush's upload and
// commit, the uploader's Upload and Commit server spans, and inside those
// the object PUT and the etcd commit transaction.
func TestTraceDisklessProduce(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	s := cluster.StartAllInOne(t, cluster.WithTracerProvider(tp))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const topic = "traced-diskless"
	adm := kadm.NewClient(newClient(t, s.KafkaAddr()))
	if resp, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"storage.mode": kmsg.StringPtr("diskless")}, topic); err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	prod := newClient(t, s.KafkaAddr(), kgo.DefaultProduceTopic(topic))
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("traced")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	// The spans of one trace end on different goroutines (a server span
	// ends after its response is sent): wait until the trace is complete.
	type want struct {
		name   string
		kind   trace.SpanKind
		parent string // name of the parent span; "" for the root
	}
	wants := []want{
		{"kafka.Produce", trace.SpanKindServer, ""},
		{"streamline.log.v1.LogService/ProduceStream", trace.SpanKindClient, "kafka.Produce"},
		{"streamline.log.v1.LogService/ProduceStream", trace.SpanKindServer, "streamline.log.v1.LogService/ProduceStream"},
		{"logsvc.buffer.wait", trace.SpanKindInternal, "streamline.log.v1.LogService/ProduceStream"},
		{"logsvc.diskless.upload", trace.SpanKindInternal, "logsvc.buffer.wait"},
		{"streamline.upload.v1.UploadService/Upload", trace.SpanKindClient, "logsvc.diskless.upload"},
		{"streamline.upload.v1.UploadService/Upload", trace.SpanKindServer, "streamline.upload.v1.UploadService/Upload"},
		{"objstore.PUT", trace.SpanKindClient, "streamline.upload.v1.UploadService/Upload"},
		{"logsvc.diskless.commit", trace.SpanKindInternal, "logsvc.buffer.wait"},
		{"streamline.upload.v1.UploadService/Commit", trace.SpanKindClient, "logsvc.diskless.commit"},
		{"streamline.upload.v1.UploadService/Commit", trace.SpanKindServer, "streamline.upload.v1.UploadService/Commit"},
		{"etcd.commit", trace.SpanKindClient, "streamline.upload.v1.UploadService/Commit"},
	}
	var (
		spans   []sdktrace.ReadOnlySpan
		missing []string
	)
	for deadline := time.Now().Add(30 * time.Second); ; {
		spans, missing = nil, nil
		var root sdktrace.ReadOnlySpan
		for _, sp := range rec.Ended() {
			if sp.Name() == "kafka.Produce" {
				root = sp
			}
		}
		if root != nil {
			for _, sp := range rec.Ended() {
				if sp.SpanContext().TraceID() == root.SpanContext().TraceID() {
					spans = append(spans, sp)
				}
			}
		}
		for _, w := range wants {
			if find(spans, w.name, w.kind) == nil {
				missing = append(missing, fmt.Sprintf("%s (%s)", w.name, w.kind))
			}
		}
		if root != nil && len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the produce's trace lacks %v; it has:\n%s", missing, describe(spans))
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Parent links: each expected span's parent is the expected span, and
	// every span of the trace but the root has its parent in the trace.
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, sp := range spans {
		byID[sp.SpanContext().SpanID()] = sp
	}
	for _, w := range wants {
		sp := find(spans, w.name, w.kind)
		parent, ok := byID[sp.Parent().SpanID()]
		switch {
		case w.parent == "" && sp.Parent().IsValid():
			t.Errorf("%s (%s): has a parent %s, want it to be the root", w.name, w.kind, sp.Parent().SpanID())
		case w.parent != "" && (!ok || parent.Name() != w.parent):
			t.Errorf("%s (%s): parent %v, want %s", w.name, w.kind, parentName(parent, ok), w.parent)
		}
	}
	for _, sp := range spans {
		if sp.Parent().IsValid() {
			if _, ok := byID[sp.Parent().SpanID()]; !ok {
				t.Errorf("span %s (%s) has parent %s outside the trace", sp.Name(), sp.SpanKind(), sp.Parent().SpanID())
			}
		}
	}
	if t.Failed() {
		t.Logf("trace:\n%s", describe(spans))
	}
	// The Kafka span says what request it was.
	root := find(spans, "kafka.Produce", trace.SpanKindServer)
	attrs := map[string]string{}
	for _, a := range root.Attributes() {
		attrs[string(a.Key)] = a.Value.Emit()
	}
	if attrs["kafka.api_key"] != "0" || attrs["kafka.api_version"] == "" || attrs["kafka.client_id"] == "" {
		t.Errorf("kafka.Produce attributes %v: want api key 0, a version and the client id", attrs)
	}
}

func find(spans []sdktrace.ReadOnlySpan, name string, kind trace.SpanKind) sdktrace.ReadOnlySpan {
	for _, sp := range spans {
		if sp.Name() == name && sp.SpanKind() == kind {
			return sp
		}
	}
	return nil
}

func parentName(sp sdktrace.ReadOnlySpan, ok bool) string {
	if !ok {
		return "none in the trace"
	}
	return fmt.Sprintf("%s (%s)", sp.Name(), sp.SpanKind())
}

func describe(spans []sdktrace.ReadOnlySpan) string {
	var b strings.Builder
	for _, sp := range spans {
		fmt.Fprintf(&b, "  %s %s (%s) parent %s\n", sp.SpanContext().SpanID(), sp.Name(), sp.SpanKind(), sp.Parent().SpanID())
	}
	return b.String()
}

// TestMetricsEndpoint produces to and consumes (in a consumer group) from
// a local and a diskless topic of an in-process all-in-one serving
// --http-addr, then scrapes /metrics and checks that the data-path series
// exist for both storage modes with non-zero counts, and that /healthz and
// /readyz answer 200.
func TestMetricsEndpoint(t *testing.T) {
	s := cluster.StartAllInOne(t, cluster.WithHTTPAddr("127.0.0.1:0"))
	base := "http://" + s.HTTPAddr()
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := get(t, base+path); code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient(t, s.KafkaAddr()))
	const n = 200
	for _, mode := range []string{"local", "diskless"} {
		topic := "metrics-" + mode
		if resp, err := adm.CreateTopic(ctx, 2, 1, map[string]*string{"storage.mode": kmsg.StringPtr(mode)}, topic); err != nil || resp.Err != nil {
			t.Fatalf("create %s: %v %v", topic, err, resp.Err)
		}
		prod := newClient(t, s.KafkaAddr(), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(time.Millisecond))
		produceAll(ctx, t, prod, n, func(i int) *kgo.Record {
			return &kgo.Record{Key: []byte(fmt.Sprint(i % 7)), Value: []byte(fmt.Sprintf("%s-%d", mode, i))}
		})
		// A group member reads everything and commits, and stays in the
		// group until the scrape.
		cons := newClient(t, s.KafkaAddr(), kgo.ConsumerGroup("metrics-group-"+mode), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond), kgo.DisableAutoCommit())
		for got := 0; got < n; {
			fs := cons.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("%s: consumed %d of %d", topic, got, n)
			}
			fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
			got += fs.NumRecords()
		}
		if err := cons.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatalf("%s: commit: %v", topic, err)
		}
	}

	families := scrape(t, base+"/metrics")
	positive := func(name string, labels map[string]string) {
		t.Helper()
		if v, ok := sample(families, name, labels); !ok {
			t.Errorf("no series %s%v", name, labels)
		} else if v <= 0 {
			t.Errorf("%s%v = %v, want > 0", name, labels, v)
		}
	}
	present := func(name string, labels map[string]string) {
		t.Helper()
		if _, ok := sample(families, name, labels); !ok {
			t.Errorf("no series %s%v", name, labels)
		}
	}
	for _, mode := range []string{"local", "diskless"} {
		m := map[string]string{"storage_mode": mode}
		positive("streamline_gateway_produce_bytes_total", m)
		positive("streamline_gateway_fetch_bytes_total", m)
		positive("streamline_gateway_produce_duration_seconds", m)
		positive("streamline_gateway_fetch_duration_seconds", m)
		positive("streamline_logsvc_append_duration_seconds", m)
		positive("streamline_logsvc_partitions_led", map[string]string{"storage_mode": mode, "node": "logsvc-1"})
	}
	positive("streamline_gateway_request_duration_seconds", map[string]string{"api": "Produce"})
	positive("streamline_gateway_request_duration_seconds", map[string]string{"api": "Fetch"})
	d := map[string]string{"storage_mode": "diskless"}
	positive("streamline_logsvc_buffer_flushes_total", d)
	positive("streamline_logsvc_buffer_flushed_bytes_total", d)
	present("streamline_logsvc_buffer_bytes", d)
	present("streamline_logsvc_buffer_overflows_total", d)
	present("streamline_logsvc_buffer_eager_flushes_total", d)
	present("streamline_logsvc_read_cache_hits_total", map[string]string{"storage_mode": "diskless", "tier": "range"})
	present("streamline_logsvc_read_cache_misses_total", map[string]string{"storage_mode": "diskless", "tier": "range"})
	ring := map[string]string{"storage_mode": "diskless", "tier": "ring"}
	if hits, _ := sample(families, "streamline_logsvc_read_cache_hits_total", ring); hits <= 0 {
		if misses, _ := sample(families, "streamline_logsvc_read_cache_misses_total", ring); misses <= 0 {
			t.Errorf("diskless reads counted neither as ring hits nor as misses")
		}
	}
	positive("streamline_objstore_op_duration_seconds", map[string]string{"op": "put"})
	positive("streamline_objstore_bytes_total", map[string]string{"op": "put"})
	present("streamline_objstore_op_errors_total", map[string]string{"op": "put"})
	positive("streamline_etcd_commit_duration_seconds", map[string]string{"op": "diskless_commit"})
	positive("streamline_etcd_commit_duration_seconds", map[string]string{"op": "group_offsets"})
	positive("streamline_gateway_groups", nil)
	positive("streamline_gateway_group_members", nil)
	present("go_goroutines", nil)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// sample returns the value of the series of name whose labels include
// labels: a counter's or gauge's value, a histogram's sample count.
func sample(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// httpVar is the cluster.env variable holding a node's --http-addr.
func httpVar(node string) string {
	return "HTTP_" + strings.ToUpper(strings.ReplaceAll(node, "-", "_"))
}

// checkNodesServeMetrics checks that every node cluster.sh started but
// etcd is ready on its HTTP_<NODE> address and exports its own series.
func checkNodesServeMetrics(t *testing.T, env map[string]string) {
	t.Helper()
	own := map[string]string{
		"logsvc":   "streamline_logsvc_partitions_led",
		"uploader": "streamline_etcd_commit_duration_seconds",
		"gateway":  "streamline_gateway_request_duration_seconds",
	}
	for _, n := range clusterNodes {
		if n == "etcd" {
			continue
		}
		addr := env[httpVar(n)]
		if addr == "" {
			t.Fatalf("%s not set in cluster.env", httpVar(n))
		}
		if code, body := get(t, "http://"+addr+"/readyz"); code != http.StatusOK {
			t.Errorf("%s: GET /readyz: %d %s", n, code, body)
		}
		kind, _, _ := strings.Cut(n, "-")
		if _, ok := scrape(t, "http://"+addr+"/metrics")[own[kind]]; !ok {
			t.Errorf("%s: /metrics has no %s", n, own[kind])
		}
	}
}
