package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// maxReportedErrors is how many record errors produce prints one by one.
const maxReportedErrors = 5

func (a *app) produceCommand() *cobra.Command {
	var (
		file     string
		keySep   string
		progress bool
	)
	c := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Produce lines of stdin (or --file) as records",
		Long: `Produce each line of stdin (or of --file) as one record of TOPIC through the
Kafka API, with acks=all and an idempotent producer, then print a summary
(records, bytes, errors). With --key-separator, the text before the first
separator of a line is the record's key (a line without it has no key).

The Kafka addresses are --bootstrap-servers, or else the gateways the admin
API lists. A record not delivered within --timeout fails. Exit code 1 if any
record failed.`,
		Example: `  seq 100 | streamline-cli produce events
  streamline-cli produce events --key-separator : <<< $'k1:first\nk2:second'
  streamline-cli produce events --file records.txt --bootstrap-servers 127.0.0.1:9092`,
		Args: exactArgs("TOPIC"),
		RunE: a.action(func(cmd *cobra.Command, args []string) error {
			topic := args[0]
			in := a.stdin
			if file != "" && file != "-" {
				f, err := os.Open(file)
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			seeds, err := a.bootstrapServers(a.ctx)
			if err != nil {
				return err
			}
			cl, err := kgo.NewClient(
				kgo.SeedBrokers(seeds...),
				kgo.ClientID("streamline-cli"),
				kgo.DefaultProduceTopic(topic),
				kgo.RequiredAcks(kgo.AllISRAcks()), // idempotent writes are kgo's default
				kgo.RecordDeliveryTimeout(a.timeout),
			)
			if err != nil {
				return err
			}
			defer cl.Close()
			if err := a.checkTopic(cl, topic, seeds); err != nil {
				return err
			}
			return a.produce(cmd, cl, topic, in, []byte(keySep), progress)
		}),
	}
	f := c.Flags()
	f.StringVarP(&file, "file", "f", "", "read records from this file instead of stdin (- is stdin)")
	f.StringVarP(&keySep, "key-separator", "K", "", "split each line at the first occurrence of this separator into key and value")
	addProgressFlag(c, &progress)
	return c
}

// produce sends every line of in and prints the summary.
func (a *app) produce(cmd *cobra.Command, cl *kgo.Client, topic string, in io.Reader, keySep []byte, progressOn bool) error {
	var (
		ok      counter
		mu      sync.Mutex
		failed  int64
		shown   int
		readErr error
		sent    atomic.Int64
	)
	start := time.Now()
	p := a.startProgress(cmd, progressOn, "produced", &ok)
	ctx := a.ctx
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		r := bufio.NewReaderSize(in, 64<<10)
		for line := int64(1); ctx.Err() == nil; line++ {
			b, err := r.ReadBytes('\n')
			if len(b) > 0 {
				b = bytes.TrimSuffix(b, []byte{'\n'})
				b = bytes.TrimSuffix(b, []byte{'\r'})
				rec := &kgo.Record{Value: b}
				if len(keySep) > 0 {
					if k, v, found := bytes.Cut(b, keySep); found {
						rec.Key, rec.Value = k, v
					}
				}
				size := len(rec.Key) + len(rec.Value)
				n := line
				sent.Add(1)
				cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
					if err == nil {
						ok.add(size)
						return
					}
					mu.Lock()
					defer mu.Unlock()
					failed++
					if shown < maxReportedErrors {
						shown++
						fmt.Fprintf(a.stderr, "error: record of line %d: %v\n", n, err)
					} else if shown == maxReportedErrors {
						shown++
						fmt.Fprintln(a.stderr, "error: more records failed (not shown)")
					}
				})
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					mu.Lock()
					readErr = err
					mu.Unlock()
				}
				return
			}
		}
	}()
	interrupted := false
	select {
	case <-readDone:
	case <-ctx.Done():
		interrupted = true
	}
	if !interrupted {
		if err := cl.Flush(ctx); err != nil {
			interrupted = true
		}
	}
	if interrupted {
		// Records still buffered fail with the client closed.
		cl.Close()
	}
	p.finish()
	mu.Lock()
	nFailed, rErr := failed, readErr
	mu.Unlock()
	elapsed := time.Since(start)
	if a.output == outputJSON {
		if err := writeJSON(a.stdout, struct {
			Topic       string `json:"topic"`
			Records     int64  `json:"records"`
			Bytes       int64  `json:"bytes"`
			Errors      int64  `json:"errors"`
			ElapsedMs   int64  `json:"elapsed_ms"`
			Interrupted bool   `json:"interrupted,omitempty"`
		}{topic, ok.records.Load(), ok.bytes.Load(), nFailed, elapsed.Milliseconds(), interrupted}); err != nil {
			return err
		}
	} else {
		note := ""
		if interrupted {
			note = " (interrupted)"
		}
		fmt.Fprintf(a.stdout, "Produced %s (%d bytes) to %q in %s, %s%s.\n", plural(ok.records.Load(), "record"), ok.bytes.Load(),
			topic, elapsed.Round(time.Millisecond), plural(nFailed, "error"), note)
	}
	if rErr != nil {
		return fmt.Errorf("reading the input: %w", rErr)
	}
	if nFailed > 0 {
		return fmt.Errorf("%d of %d records were not produced", nFailed, sent.Load())
	}
	if interrupted {
		return silentError{exitFailure}
	}
	return nil
}

// checkTopic fails unless topic exists, so that a typo does not wait for
// --timeout: Streamline's gateways may auto-create topics, but only for
// clients that ask to, and this one does not.
func (a *app) checkTopic(cl *kgo.Client, topic string, seeds []string) error {
	ctx, cancel := context.WithTimeout(a.ctx, a.timeout)
	defer cancel()
	md, err := kadm.NewClient(cl).Metadata(ctx, topic)
	if err != nil {
		return fmt.Errorf("cannot reach the Kafka API at %v: %w", seeds, err)
	}
	td, ok := md.Topics[topic]
	switch {
	case !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition):
		return fmt.Errorf("topic %q does not exist (create it with: streamline-cli topics create %s)", topic, topic)
	case td.Err != nil:
		return fmt.Errorf("topic %q: %w", topic, td.Err)
	}
	return nil
}
