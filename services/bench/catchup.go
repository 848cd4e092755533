package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// CatchUpResult is what CatchUp measured.
type CatchUpResult struct {
	Records int
	Bytes   int64 // record values
	Elapsed time.Duration
}

// RecordsPerSec is the read rate.
func (r CatchUpResult) RecordsPerSec() float64 { return float64(r.Records) / r.Elapsed.Seconds() }

// MBPerSec is the read rate in MiB/s of record values.
func (r CatchUpResult) MBPerSec() float64 { return float64(r.Bytes) / (1 << 20) / r.Elapsed.Seconds() }

// String is a one-line summary ("120000 records in 4.1s: 29268 rec/s, 28.6 MiB/s").
func (r CatchUpResult) String() string {
	return fmt.Sprintf("%d records in %v: %.0f rec/s, %.1f MiB/s", r.Records, r.Elapsed.Round(time.Millisecond), r.RecordsPerSec(), r.MBPerSec())
}

// CatchUp reads topic from its start with a new consumer until it has
// read want records, as a consumer does that was stopped while the
// records were written (or a new one, reading history): how fast the
// server serves records that are no longer at the tail. The clock starts
// at the first fetch.
func CatchUp(ctx context.Context, brokers []string, topic string, want int) (CatchUpResult, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return CatchUpResult{}, err
	}
	defer cl.Close()
	var res CatchUpResult
	start := time.Now()
	for res.Records < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return res, fmt.Errorf("catch-up read of %s: %d of %d records after %v: %w", topic, res.Records, want, time.Since(start).Round(time.Millisecond), ctx.Err())
		}
		for _, fe := range fs.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) {
				return res, fmt.Errorf("catch-up read of %s-%d: %w", fe.Topic, fe.Partition, fe.Err)
			}
		}
		fs.EachRecord(func(r *kgo.Record) {
			res.Records++
			res.Bytes += int64(len(r.Value))
		})
	}
	res.Elapsed = time.Since(start)
	return res, nil
}
