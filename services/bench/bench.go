// Package bench drives a produce/consume load against any Kafka-protocol
// address and reports throughput and latency percentiles. It is the engine
// of the streamline-bench command; speed is measured here, never asserted
// in tests.
package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config is one benchmark run.
type Config struct {
	Brokers     []string
	Topic       string
	Partitions  int32
	Records     int
	RecordBytes int
	// Rate limits produce to this many records per second (0: as fast as possible).
	Rate        int
	Linger      time.Duration
	Compression string // none, gzip, snappy, lz4, zstd
	// CreateTopic creates Topic with Partitions first.
	CreateTopic bool
	// ReplicationFactor of the created topic (0: 1).
	ReplicationFactor int16
	// ConfigEntries are set on the created topic (e.g. storage.mode).
	ConfigEntries map[string]*string
	// ProduceOnly skips the consumer (and end-to-end latency).
	ProduceOnly bool
	// TxnRecords > 0 produces through a transactional producer, committing
	// every TxnRecords records, and consumes read_committed. A record's
	// produce latency is then from its send to its transaction's commit
	// (when read_committed consumers may see it), not to its ack.
	TxnRecords int
	// Duration, when positive, stops producing once this long has passed
	// since the first send (Records still caps the run); the run's Records
	// are then those sent.
	Duration time.Duration
	// Started, if set, is called once when producing begins (after the
	// topic is created and ready).
	Started func()
	// Acked, if set, counts records as they are acknowledged, so the
	// caller can sample throughput during the run.
	Acked *atomic.Int64
	// TolerateProduceErrors counts records whose produce failed in
	// Result.ProduceErrors instead of failing the run.
	TolerateProduceErrors bool
}

// Result holds the measurements of one run.
type Result struct {
	Records                             int
	Bytes                               int64
	Elapsed                             time.Duration
	ProduceP50, ProduceP99, ProduceP999 time.Duration
	E2EP50, E2EP99, E2EP999             time.Duration
	// ProduceErrors is how many records failed (with
	// Config.TolerateProduceErrors; FirstProduceError is the first error).
	ProduceErrors     int
	FirstProduceError error
	// PeakRSS and EndRSS are the server's resident set size in bytes, the
	// highest sampled during the run and the last (0: not measured; set by
	// the caller).
	PeakRSS, EndRSS int64
	// ProduceCDF and E2ECDF are the latency distributions in compact form:
	// element i is the latency at quantile i/CDFSteps (CDFSteps+1 points,
	// from the fastest record to the slowest). Empty when there were no
	// samples (E2ECDF with ProduceOnly).
	ProduceCDF, E2ECDF []time.Duration
}

// CDFSteps is the number of quantile steps of Result.ProduceCDF and
// Result.E2ECDF: they hold the latency at quantiles 0, 1/CDFSteps, ..., 1.
const CDFSteps = 200

// CDFQuantile is the quantile of element i of a CDF of a Result.
func CDFQuantile(i int) float64 { return float64(i) / CDFSteps }

// RecordsPerSec is the produce throughput.
func (r Result) RecordsPerSec() float64 { return float64(r.Records) / r.Elapsed.Seconds() }

// MBPerSec is the produce throughput in MiB/s.
func (r Result) MBPerSec() float64 { return float64(r.Bytes) / (1 << 20) / r.Elapsed.Seconds() }

// RowHeader is the header of the Markdown table Row writes rows of.
const RowHeader = "| scenario | records/s | MiB/s | produce p50 | produce p99 | produce p999 | end-to-end p99 |\n|---|---:|---:|---:|---:|---:|---:|"

// Row writes the result as one Markdown table row (see RowHeader).
func (r Result) Row(w io.Writer, label string) {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
	e2e := "-" // no consumer ran alongside (Config.ProduceOnly)
	if len(r.E2ECDF) > 0 {
		e2e = ms(r.E2EP99)
	}
	fmt.Fprintf(w, "| %s | %.0f | %.1f | %s | %s | %s | %s |\n", label, r.RecordsPerSec(), r.MBPerSec(), ms(r.ProduceP50), ms(r.ProduceP99), ms(r.ProduceP999), e2e)
}

// Print writes a one-block human summary.
func (r Result) Print(w io.Writer, label string) {
	fmt.Fprintf(w, "%s: %d records in %v: %.0f rec/s, %.1f MiB/s\n", label, r.Records, r.Elapsed.Round(time.Millisecond), r.RecordsPerSec(), r.MBPerSec())
	fmt.Fprintf(w, "  produce latency  p50 %v  p99 %v  p999 %v\n", r.ProduceP50, r.ProduceP99, r.ProduceP999)
	fmt.Fprintf(w, "  end-to-end       p50 %v  p99 %v  p999 %v\n", r.E2EP50, r.E2EP99, r.E2EP999)
}

func codec(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "", "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("unknown compression %q", name)
}

// Run produces cfg.Records records with an idempotent acks=all producer
// while a consumer reads them; produce latency is send→ack per record, end
// to end latency is send→consumed (the send time travels in the value).
func Run(ctx context.Context, cfg Config) (Result, error) {
	cc, err := codec(cfg.Compression)
	if err != nil {
		return Result{}, err
	}
	if cfg.RecordBytes < 8 {
		cfg.RecordBytes = 8
	}
	if cfg.CreateTopic {
		adm, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...))
		if err != nil {
			return Result{}, err
		}
		// Log-service nodes started just before the run may not be known to
		// the gateway yet: INVALID_REPLICATION_FACTOR is retried for a while.
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, cerr := kadm.NewClient(adm).CreateTopic(ctx, cfg.Partitions, max(cfg.ReplicationFactor, 1), cfg.ConfigEntries, cfg.Topic)
			if err = cerr; err == nil {
				err = resp.Err
			}
			if !errors.Is(err, kerr.InvalidReplicationFactor) || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err == nil {
			err = awaitPartitions(ctx, kadm.NewClient(adm), cfg.Topic, cfg.Partitions)
		}
		adm.Close()
		if err != nil {
			return Result{}, fmt.Errorf("create topic %s: %w", cfg.Topic, err)
		}
	}
	prodOpts := []kgo.Opt{kgo.SeedBrokers(cfg.Brokers...), kgo.DefaultProduceTopic(cfg.Topic),
		kgo.ProducerLinger(cfg.Linger), kgo.ProducerBatchCompression(cc), kgo.RequiredAcks(kgo.AllISRAcks())}
	consOpts := []kgo.Opt{kgo.SeedBrokers(cfg.Brokers...), kgo.ConsumeTopics(cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100 * time.Millisecond)}
	if cfg.TxnRecords > 0 {
		prodOpts = append(prodOpts, kgo.TransactionalID("streamline-bench-"+cfg.Topic))
		consOpts = append(consOpts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	prod, err := kgo.NewClient(prodOpts...)
	if err != nil {
		return Result{}, err
	}
	defer prod.Close()
	cons, err := kgo.NewClient(consOpts...)
	if err != nil {
		return Result{}, err
	}
	defer cons.Close()

	e2e := make([]time.Duration, 0, cfg.Records)
	consumed := make(chan error, 1)
	// want is how many records the consumer reads: cfg.Records, or what
	// was acknowledged once producing ends early (Duration, errors).
	var want atomic.Int64
	want.Store(int64(cfg.Records))
	if cfg.ProduceOnly {
		consumed <- nil
	} else {
		go consumeAll(ctx, cons, &want, &e2e, consumed)
	}

	lat := make([]time.Duration, cfg.Records)
	var sentAt []time.Time // per record of the open transaction
	if cfg.TxnRecords > 0 {
		sentAt = make([]time.Time, cfg.Records)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	var failed, acked int
	payload := make([]byte, cfg.RecordBytes)
	if cfg.Started != nil {
		cfg.Started()
	}
	start := time.Now()
	produced := cfg.Records
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Second / time.Duration(cfg.Rate)
	}
	for i := 0; i < cfg.Records; i++ {
		if cfg.Duration > 0 && time.Since(start) >= cfg.Duration && (cfg.TxnRecords == 0 || i%cfg.TxnRecords == 0) {
			produced = i
			break
		}
		if interval > 0 {
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
		}
		if cfg.TxnRecords > 0 && i%cfg.TxnRecords == 0 {
			if err := prod.BeginTransaction(); err != nil {
				return Result{}, fmt.Errorf("begin transaction: %w", err)
			}
		}
		v := make([]byte, cfg.RecordBytes)
		copy(v, payload)
		sent := time.Now()
		if sentAt != nil {
			sentAt[i] = sent
		}
		binary.BigEndian.PutUint64(v, uint64(sent.UnixNano()))
		wg.Add(1)
		i := i
		prod.Produce(ctx, &kgo.Record{Value: v}, func(_ *kgo.Record, err error) {
			if sentAt == nil {
				lat[i] = time.Since(sent)
			}
			mu.Lock()
			if err != nil {
				failed++
				if firstErr == nil {
					firstErr = err
				}
			} else {
				acked++
				if cfg.Acked != nil {
					cfg.Acked.Add(1)
				}
			}
			mu.Unlock()
			wg.Done()
		})
		if cfg.TxnRecords > 0 && ((i+1)%cfg.TxnRecords == 0 || i == cfg.Records-1) {
			if err := commitTxn(ctx, prod); err != nil {
				return Result{}, err
			}
			committed := time.Now()
			for j := i - i%cfg.TxnRecords; j <= i; j++ {
				lat[j] = committed.Sub(sentAt[j])
			}
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil && !cfg.TolerateProduceErrors {
		return Result{}, fmt.Errorf("produce: %d of %d records failed, the first: %w", failed, produced, firstErr)
	}
	want.Store(int64(acked))
	if err := <-consumed; err != nil {
		return Result{}, fmt.Errorf("consume: %w", err)
	}
	r := Result{Records: produced, Bytes: int64(produced) * int64(cfg.RecordBytes), Elapsed: elapsed,
		ProduceErrors: failed, FirstProduceError: firstErr}
	r.ProduceP50, r.ProduceP99, r.ProduceP999, r.ProduceCDF = distribution(lat[:produced])
	r.E2EP50, r.E2EP99, r.E2EP999, r.E2ECDF = distribution(e2e)
	return r, nil
}

// DeleteTopic deletes a topic and returns once the delete is answered
// (the server may still be removing the topic's files then: that is what
// a run right after it measures).
func DeleteTopic(ctx context.Context, brokers []string, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).DeleteTopic(ctx, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("delete topic %s: %w", topic, err)
	}
	return nil
}

// commitTxn flushes the open transaction's records and commits it.
func commitTxn(ctx context.Context, prod *kgo.Client) error {
	if err := prod.Flush(ctx); err != nil {
		return fmt.Errorf("flush transaction: %w", err)
	}
	if err := prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// awaitPartitions waits until every partition of a topic just created
// answers ListOffsets: CreateTopics returns before the partitions are open
// on their leaders, and the first second of a run must not measure that.
func awaitPartitions(ctx context.Context, adm *kadm.Client, topic string, partitions int32) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		offs, err := adm.ListEndOffsets(ctx, topic)
		ready := 0
		if err == nil {
			offs.Each(func(o kadm.ListedOffset) {
				if o.Err == nil {
					ready++
				} else {
					err = o.Err
				}
			})
		}
		if err == nil && int32(ready) == partitions {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d partitions ready after 30s: %v", ready, partitions, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func percentiles(d []time.Duration) (p50, p99, p999 time.Duration) {
	p50, p99, p999, _ = distribution(d)
	return
}

// nearestRank is the q quantile of sorted samples s (not empty).
func nearestRank(s []time.Duration, q float64) time.Duration { return s[int(q*float64(len(s)-1))] }

// distribution sorts a copy of the samples and returns their percentiles
// and their CDF (see Result.ProduceCDF); all zero and nil without samples.
func distribution(d []time.Duration) (p50, p99, p999 time.Duration, cdf []time.Duration) {
	if len(d) == 0 {
		return
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(q float64) time.Duration { return nearestRank(s, q).Round(10 * time.Microsecond) }
	cdf = make([]time.Duration, CDFSteps+1)
	for i := range cdf {
		// The same nearest-rank rule as the percentiles, unrounded; the
		// last point is the maximum.
		cdf[i] = s[i*(len(s)-1)/CDFSteps]
	}
	return at(0.50), at(0.99), at(0.999), cdf
}

// consumeAll reads want records (which may drop while it reads) and
// records their end-to-end latency.
func consumeAll(ctx context.Context, cons *kgo.Client, want *atomic.Int64, e2e *[]time.Duration, done chan<- error) {
	got := 0
	for int64(got) < want.Load() {
		// A short poll, so a want lowered while nothing arrives ends it.
		pctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		fs := cons.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			done <- ctx.Err()
			return
		}
		for _, fe := range fs.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) {
				done <- fe.Err
				return
			}
		}
		now := time.Now()
		fs.EachRecord(func(r *kgo.Record) {
			sent := time.Unix(0, int64(binary.BigEndian.Uint64(r.Value)))
			*e2e = append(*e2e, now.Sub(sent))
			got++
		})
	}
	done <- nil
}
