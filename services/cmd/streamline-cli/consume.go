package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
)

func (a *app) consumeCommand() *cobra.Command {
	var (
		group         string
		fromBeginning bool
		maxRecords    int64
		idle          time.Duration
		printKey      bool
		keySep        string
		progress      bool
	)
	c := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Print the records of a topic",
		Long: `Print the records of TOPIC as they arrive, through the Kafka API: in text
one value per line (--print-key: key, separator, value); with -o json one
JSON object per line with topic, partition, offset, key, value, timestamp
(and headers). Keys and values that are not UTF-8 are base64 with
"key_encoding"/"value_encoding": "base64".

Without --group it reads every partition, from the end (new records only)
or with --from-beginning from the first stored offset. With --group it joins
the consumer group, starts at the group's committed offsets (where none:
as above) and commits the offsets of the records it printed.

It stops after --max-records records, after --timeout-idle without a new
record, or on Ctrl-C, and prints a summary on stderr.`,
		Example: `  streamline-cli consume events --from-beginning --max-records 100
  streamline-cli consume events --group analytics --from-beginning --timeout-idle 5s -o json`,
		Args: exactArgs("TOPIC"),
		RunE: a.action(func(cmd *cobra.Command, args []string) error {
			if maxRecords < 0 {
				return invalidFlag("max-records", maxRecords, "must not be negative (0: no limit)")
			}
			if idle < 0 {
				return invalidFlag("timeout-idle", idle, "must not be negative (0: wait forever)")
			}
			topic := args[0]
			seeds, err := a.bootstrapServers(a.ctx)
			if err != nil {
				return err
			}
			start := kgo.NewOffset().AtEnd()
			if fromBeginning {
				start = kgo.NewOffset().AtStart()
			}
			opts := []kgo.Opt{
				kgo.SeedBrokers(seeds...),
				kgo.ClientID("streamline-cli"),
				kgo.ConsumeTopics(topic),
				kgo.ConsumeResetOffset(start),
			}
			if group != "" {
				opts = append(opts, kgo.ConsumerGroup(group), kgo.AutoCommitMarks())
			}
			cl, err := kgo.NewClient(opts...)
			if err != nil {
				return err
			}
			defer cl.Close()
			if err := a.checkTopic(cl, topic, seeds); err != nil {
				return err
			}
			return a.consume(cmd, cl, consumeOpts{
				topic: topic, group: group, max: maxRecords, idle: idle,
				printKey: printKey, keySep: keySep, progress: progress,
			})
		}),
	}
	f := c.Flags()
	f.StringVarP(&group, "group", "g", "", "consume as a member of this consumer group and commit offsets")
	f.BoolVar(&fromBeginning, "from-beginning", false, "start at the first stored offset (where the group has no committed offset)")
	f.Int64VarP(&maxRecords, "max-records", "n", 0, "stop after this many records (0: no limit)")
	f.DurationVar(&idle, "timeout-idle", 0, "stop after this long without a new record, e.g. 5s (0: wait forever)")
	f.BoolVar(&printKey, "print-key", false, "text output: print the key, the separator, then the value")
	f.StringVar(&keySep, "key-separator", "\t", "text output: separator between key and value with --print-key")
	addProgressFlag(c, &progress)
	return c
}

type consumeOpts struct {
	topic, group string
	max          int64
	idle         time.Duration
	printKey     bool
	keySep       string
	progress     bool
}

// jsonRecord is one line of consume -o json.
type jsonRecord struct {
	Topic         string       `json:"topic"`
	Partition     int32        `json:"partition"`
	Offset        int64        `json:"offset"`
	Key           *string      `json:"key"`
	KeyEncoding   string       `json:"key_encoding,omitempty"`
	Value         *string      `json:"value"`
	ValueEncoding string       `json:"value_encoding,omitempty"`
	Timestamp     string       `json:"timestamp"`
	TimestampMs   int64        `json:"timestamp_ms"`
	Headers       []jsonHeader `json:"headers,omitempty"`
}

type jsonHeader struct {
	Key           string  `json:"key"`
	Value         *string `json:"value"`
	ValueEncoding string  `json:"value_encoding,omitempty"`
}

// jsonBytes is b as a JSON string: text if UTF-8, else base64 (encoding
// says which); nil stays null.
func jsonBytes(b []byte) (*string, string) {
	if b == nil {
		return nil, ""
	}
	if utf8.Valid(b) {
		s := string(b)
		return &s, ""
	}
	s := base64.StdEncoding.EncodeToString(b)
	return &s, "base64"
}

func recordJSON(r *kgo.Record) ([]byte, error) {
	jr := jsonRecord{
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
		Timestamp: r.Timestamp.UTC().Format(time.RFC3339Nano), TimestampMs: r.Timestamp.UnixMilli(),
	}
	jr.Key, jr.KeyEncoding = jsonBytes(r.Key)
	jr.Value, jr.ValueEncoding = jsonBytes(r.Value)
	for _, h := range r.Headers {
		jh := jsonHeader{Key: h.Key}
		jh.Value, jh.ValueEncoding = jsonBytes(h.Value)
		jr.Headers = append(jr.Headers, jh)
	}
	return json.Marshal(jr)
}

// consume polls until max records, the idle timeout or the end of a.ctx.
func (a *app) consume(cmd *cobra.Command, cl *kgo.Client, o consumeOpts) error {
	ctx := a.ctx
	out := bufio.NewWriterSize(a.stdout, 64<<10)
	var c counter
	started := time.Now()
	p := a.startProgress(cmd, o.progress, "consumed", &c)
	defer p.finish()
	last := time.Now()
	reason := ""
	var fetchErr error
loop:
	for o.max == 0 || c.records.Load() < o.max {
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if o.idle > 0 {
			pctx, cancel = context.WithDeadline(ctx, last.Add(o.idle))
		}
		fs := cl.PollRecords(pctx, 10000)
		cancel()
		if ctx.Err() != nil {
			reason = "interrupted"
			break
		}
		fs.EachError(func(t string, part int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || fetchErr != nil {
				return
			}
			fetchErr = fmt.Errorf("fetching %s partition %d: %w", t, part, err)
		})
		if fetchErr != nil {
			break
		}
		if fs.IsClientClosed() {
			break
		}
		n := 0
		for _, r := range fs.Records() {
			if o.max > 0 && c.records.Load() >= o.max {
				break
			}
			if a.output == outputJSON {
				b, err := recordJSON(r)
				if err != nil {
					return err
				}
				out.Write(b)
			} else {
				if o.printKey {
					out.Write(r.Key)
					out.WriteString(o.keySep)
				}
				out.Write(r.Value)
			}
			out.WriteByte('\n')
			if o.group != "" {
				cl.MarkCommitRecords(r)
			}
			c.add(len(r.Key) + len(r.Value))
			n++
		}
		if err := out.Flush(); err != nil {
			return fmt.Errorf("writing records: %w", err)
		}
		if n > 0 {
			last = time.Now()
		} else if o.idle > 0 && time.Since(last) >= o.idle {
			reason = fmt.Sprintf("no record for %s", o.idle)
			break loop
		}
	}
	if reason == "" && fetchErr == nil && o.max > 0 && c.records.Load() >= o.max {
		reason = "reached --max-records"
	}
	var commitErr error
	if o.group != "" {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.timeout)
		commitErr = cl.CommitMarkedOffsets(cctx)
		cancel()
	}
	p.finish()
	note := ""
	if reason != "" {
		note = " (" + reason + ")"
	}
	fmt.Fprintf(a.stderr, "Consumed %s (%d bytes) from %q in %s%s.\n", plural(c.records.Load(), "record"), c.bytes.Load(),
		o.topic, time.Since(started).Round(time.Millisecond), note)
	if fetchErr != nil {
		return fetchErr
	}
	if commitErr != nil {
		return fmt.Errorf("committing the offsets of group %q: %w", o.group, commitErr)
	}
	return nil
}
