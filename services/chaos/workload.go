package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamline-dev/streamline/shared/meta"
)

// dataTopic is a topic whose every acknowledged record the checker
// accounts for: one per storage mode.
type dataTopic struct {
	name       string
	mode       meta.StorageMode
	partitions int32
	group      string // the consumer group reading it
	// replicas is the replication factor (0: 1); a replicated topic is
	// created with min.insync.replicas=2, so acks=all needs a follower.
	replicas int16
	// eosOut, if set, makes this topic the input of the exactly-once
	// pipeline (eos.go), which consumes it as group and writes to the
	// topic eosOut (created like this one) in transactions; it has no
	// other consumer, and the admin churn never trims or reconfigures
	// it, so every record the pipeline committed is accounted for.
	eosOut string
}

func (d dataTopic) parts() []tp {
	out := make([]tp, d.partitions)
	for i := range out {
		out[i] = tp{d.name, int32(i)}
	}
	return out
}

// workload drives the cluster while faults happen: idempotent acks=all
// producers and committing consumer groups on the data topics, and admin
// churn (topics created, grown, reconfigured, trimmed and deleted).
type workload struct {
	seeds  []string
	topics []dataTopic
	modes  []meta.StorageMode
	rate   int // records per second per data topic
	h      *history
	rng    *rand.Rand // admin choices; owned by the admin goroutine
	logf   func(format string, args ...any)

	ctx       context.Context // canceled by stop: consumers and admin end
	cancel    context.CancelFunc
	stopP     chan struct{} // closed by stop: producers stop producing
	stopC     chan struct{} // closed by stopChurn: admin churn ends
	onceC     sync.Once
	churnDone chan struct{} // closed when the churn goroutine returned
	wg        sync.WaitGroup

	producers []*kgo.Client
	clients   []*kgo.Client // every client, closed by close
}

func newWorkload(seeds []string, topics []dataTopic, modes []meta.StorageMode, rate int, seed uint64, logf func(string, ...any)) *workload {
	ctx, cancel := context.WithCancel(context.Background())
	return &workload{
		seeds: seeds, topics: topics, modes: modes, rate: rate, h: newHistory(), logf: logf,
		rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), ctx: ctx, cancel: cancel, stopP: make(chan struct{}), stopC: make(chan struct{}), churnDone: make(chan struct{}),
	}
}

// Hybrid topics roll small segments often (by size and by age), so the
// leaders upload segments and local retention deletes uploaded ones all
// the time, under every fault: at the workload's rate (150 small records
// a second over 6 partitions, about 2 KiB a second per partition) a
// segment rolls every 5 s and the local copy keeps about the last 20 s.
const (
	hybridSegmentBytes        = "16384"
	hybridSegmentMs           = "5000"
	hybridLocalRetentionBytes = "49152"
	hybridLocalRetentionMs    = "20000"
)

// topicConfigs is the CreateTopics configs of a data or churn topic of
// mode.
func topicConfigs(mode meta.StorageMode) map[string]*string {
	cfg := map[string]*string{meta.ConfigStorageMode: kadm.StringPtr(string(mode))}
	if mode == meta.StorageHybrid {
		cfg[meta.ConfigSegmentBytes] = kadm.StringPtr(hybridSegmentBytes)
		cfg[meta.ConfigSegmentMs] = kadm.StringPtr(hybridSegmentMs)
		cfg[meta.ConfigLocalRetentionBytes] = kadm.StringPtr(hybridLocalRetentionBytes)
		cfg[meta.ConfigLocalRetentionMs] = kadm.StringPtr(hybridLocalRetentionMs)
	}
	return cfg
}

func (w *workload) client(opts ...kgo.Opt) (*kgo.Client, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(w.seeds...), kgo.MetadataMinAge(250 * time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond })}, opts...)...)
	if err == nil {
		w.clients = append(w.clients, cl)
	}
	return cl, err
}

// start creates the data topics and starts producers, consumers and the
// admin churn.
func (w *workload) start(ctx context.Context) error {
	adm, err := w.client()
	if err != nil {
		return err
	}
	a := kadm.NewClient(adm)
	cfg := func(d dataTopic) map[string]*string {
		cfg := topicConfigs(d.mode)
		if d.replicas > 1 {
			cfg[meta.ConfigMinInsyncReplicas] = kadm.StringPtr("2")
		}
		return cfg
	}
	for _, d := range w.topics {
		if _, err := a.CreateTopic(ctx, d.partitions, max(d.replicas, 1), cfg(d), d.name); err != nil {
			return fmt.Errorf("create %s: %w", d.name, err)
		}
	}
	for _, d := range w.topics {
		prod, err := w.client(kgo.DefaultProduceTopic(d.name), kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(5*time.Millisecond),
			kgo.RecordDeliveryTimeout(2*time.Minute), kgo.MaxBufferedRecords(4000))
		if err != nil {
			return err
		}
		w.producers = append(w.producers, prod)
		w.wg.Add(1)
		go w.produce(prod, d)
		if d.eosOut != "" {
			rf := max(d.replicas, 1)
			if _, err := a.CreateTopic(ctx, d.partitions, rf, cfg(d), d.eosOut); err != nil {
				return fmt.Errorf("create %s: %w", d.eosOut, err)
			}
			w.wg.Add(1)
			go w.pipeline(d)
			continue
		}
		for m := range 2 {
			cons, err := w.client(kgo.ConsumerGroup(d.group), kgo.ConsumeTopics(d.name), kgo.DisableAutoCommit(),
				kgo.BlockRebalanceOnPoll(), kgo.FetchMaxWait(500*time.Millisecond), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
				kgo.SessionTimeout(10*time.Second), kgo.ClientID(fmt.Sprintf("%s-%d", d.group, m)))
			if err != nil {
				return err
			}
			w.wg.Add(1)
			go w.consume(cons, d)
		}
	}
	w.wg.Add(2)
	go w.watchCommits(a)
	go w.churn(a)
	return nil
}

// produce hands rate records a second to the producer, round robin over
// the partitions; each value names its partition and per-partition
// sequence, so the checker can tell order and identity.
func (w *workload) produce(cl *kgo.Client, d dataTopic) {
	defer w.wg.Done()
	const tick = 20 * time.Millisecond
	perTick := max(1, w.rate*int(tick)/int(time.Second))
	seq := make([]int64, d.partitions)
	t := time.NewTicker(tick)
	defer t.Stop()
	n := 0
	for {
		select {
		case <-w.stopP:
			return
		case <-t.C:
		}
		for range perTick {
			if cl.BufferedProduceRecords() >= 3000 {
				break // a long outage: do not pile up more than the client holds
			}
			p := tp{d.name, int32(n % int(d.partitions))}
			n++
			s := seq[p.partition]
			seq[p.partition]++
			w.send(cl, p, s, fmt.Sprintf("%s/%d/%d", d.name, p.partition, s))
		}
	}
}

// send produces one record and records its outcome.
func (w *workload) send(cl *kgo.Client, p tp, seq int64, value string) {
	issued := time.Now()
	w.h.produce(value)
	cl.Produce(context.Background(), &kgo.Record{Topic: p.topic, Partition: p.partition, Value: []byte(value)},
		func(r *kgo.Record, err error) {
			if err != nil {
				w.h.fail(p)
				return
			}
			w.h.acked(p, ack{seq: seq, offset: r.Offset, issued: issued, acked: time.Now(), valueKey: value})
		})
}

// consume is one group member: it processes (records) what it polls, then
// commits it, with rebalances blocked in between, so a committed offset
// always means processed.
func (w *workload) consume(cl *kgo.Client, d dataTopic) {
	defer w.wg.Done()
	for w.ctx.Err() == nil {
		fs := cl.PollRecords(w.ctx, 500)
		recs := fs.Records()
		for _, r := range recs {
			w.h.consume(d.group, string(r.Value))
		}
		if len(recs) > 0 {
			ctx, cancel := context.WithTimeout(w.ctx, 20*time.Second)
			_ = cl.CommitRecords(ctx, recs...) // a failed commit is retried by the next one
			cancel()
		}
		cl.AllowRebalance()
	}
}

// watchCommits reads every group's committed offsets from the cluster a few
// times a second, so a commit that moves backwards is seen.
func (w *workload) watchCommits(a *kadm.Client) {
	defer w.wg.Done()
	t := time.NewTicker(300 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-t.C:
		}
		for _, d := range w.topics {
			w.readCommits(a, d.group, "watch")
		}
	}
}

func (w *workload) readCommits(a *kadm.Client, group, how string) map[tp]int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := a.FetchOffsets(ctx, group)
	if err != nil {
		return nil
	}
	out := map[tp]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Err == nil && o.At >= 0 {
			p := tp{o.Topic, o.Partition}
			out[p] = o.At
			w.h.commit(group, p, o.At, how)
		}
	})
	return out
}

// churn runs admin operations every second or two: create topics (of every
// storage mode), produce to them, add partitions, alter configs (of data
// topics too), DeleteRecords (of data topics too, recorded so the checker
// knows which acknowledged records may be gone) and delete topics.
func (w *workload) churn(a *kadm.Client) {
	defer w.wg.Done()
	defer close(w.churnDone)
	var live []string
	next := 0
	prod, err := w.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordDeliveryTimeout(10*time.Second))
	if err != nil {
		w.logf("churn producer: %v", err)
		return
	}
	for {
		select {
		case <-w.stopC:
			return
		case <-time.After(time.Duration(500+w.rng.IntN(1500)) * time.Millisecond):
		}
		ctx, cancel := context.WithTimeout(w.ctx, 15*time.Second)
		op := w.rng.IntN(11)
		switch {
		case op < 2 || len(live) == 0: // create
			name := "churn-" + strconv.Itoa(next)
			next++
			mode := w.modes[w.rng.IntN(len(w.modes))]
			resp, err := a.CreateTopic(ctx, int32(1+w.rng.IntN(3)), 1, topicConfigs(mode), name)
			if err == nil {
				err = resp.Err
			}
			w.h.adminOp("create", err)
			live = append(live, name)
		case op < 4: // produce a few records
			name := live[w.rng.IntN(len(live))]
			var recs []*kgo.Record
			for i := range 1 + w.rng.IntN(20) {
				recs = append(recs, &kgo.Record{Topic: name, Value: []byte(name + "/" + strconv.Itoa(i))})
			}
			w.h.adminOp("produce", prod.ProduceSync(ctx, recs...).FirstErr())
		case op == 4: // add partitions
			name := live[w.rng.IntN(len(live))]
			_, err := a.CreatePartitions(ctx, 1, name)
			w.h.adminOp("add-partitions", err)
		case op == 5: // alter configs, a data topic or a churn topic
			name := live[w.rng.IntN(len(live))]
			if ds := w.churnable(); w.rng.IntN(2) == 0 {
				name = ds[w.rng.IntN(len(ds))].name
			}
			v := strconv.Itoa(7*24*3600*1000 + w.rng.IntN(1000))
			_, err := a.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "retention.ms", Value: &v}}, name)
			w.h.adminOp("alter-configs", err)
		case op == 6: // DeleteRecords of a churn topic, to its middle
			name := live[w.rng.IntN(len(live))]
			ends, err := a.ListEndOffsets(ctx, name)
			if err == nil {
				offs := kadm.Offsets{}
				ends.Each(func(o kadm.ListedOffset) {
					if o.Err == nil && o.Offset > 0 {
						offs.AddOffset(o.Topic, o.Partition, o.Offset/2, -1)
					}
				})
				if len(offs) > 0 {
					_, err = a.DeleteRecords(ctx, offs)
				}
			}
			w.h.adminOp("delete-records", err)
		case op == 7: // DeleteRecords of a data partition, below an old ack
			w.trimDataPartition(ctx, a)
		case op == 10: // a short transactional job, as a cron job runs one
			w.h.adminOp("txn-job", w.txnJob(ctx, live[w.rng.IntN(len(live))]))
		default: // delete a churn topic (keep a few)
			if len(live) < 3 {
				break
			}
			i := w.rng.IntN(len(live))
			name := live[i]
			live = append(live[:i], live[i+1:]...)
			_, err := a.DeleteTopic(ctx, name)
			w.h.adminOp("delete", err)
		}
		cancel()
	}
}

// txnJob commits one transaction of a few records to topic with a new
// client under one fixed transactional id, then closes it: a job run.
// The gateways expire idle ids after 1 s (campaign.go), so most runs find
// their id expired and get a new producer id, some while a sweep deletes
// it; a run that finds it still there bumps its epoch.
func (w *workload) txnJob(ctx context.Context, topic string) error {
	cl, err := w.client(kgo.TransactionalID("chaos-job"), kgo.TransactionTimeout(10*time.Second),
		kgo.DefaultProduceTopic(topic), kgo.RecordDeliveryTimeout(10*time.Second))
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.BeginTransaction(); err != nil {
		return err
	}
	perr := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("job")}, &kgo.Record{Value: []byte("job")}).FirstErr()
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(perr == nil)); err != nil || perr != nil {
		return errors.Join(perr, err)
	}
	return nil
}

// trimDataPartition deletes the records of one data partition below an
// offset acknowledged a while ago; the history learns the offset before
// the request is sent, as its outcome may stay unknown.
func (w *workload) trimDataPartition(ctx context.Context, a *kadm.Client) {
	ds := w.churnable()
	d := ds[w.rng.IntN(len(ds))]
	p := tp{d.name, int32(w.rng.IntN(int(d.partitions)))}
	w.h.mu.Lock()
	as := w.h.acks[p]
	var below int64 = -1
	if len(as) > 10 {
		below = as[len(as)/4].offset
	}
	w.h.mu.Unlock()
	if below <= 0 {
		return
	}
	w.h.deleteRecords(p, below)
	offs := kadm.Offsets{}
	offs.AddOffset(p.topic, p.partition, below, -1)
	resp, err := a.DeleteRecords(ctx, offs)
	if err == nil {
		err = resp.Error()
	}
	w.h.adminOp("trim-data", err)
}

// churnable are the data topics the admin churn may trim and reconfigure:
// all but the exactly-once pipeline's input.
func (w *workload) churnable() []dataTopic {
	var out []dataTopic
	for _, d := range w.topics {
		if d.eosOut == "" {
			out = append(out, d)
		}
	}
	return out
}

// stopChurn ends the admin churn and waits for its last operation (the
// topics stay as they are). Idempotent.
func (w *workload) stopChurn() {
	w.onceC.Do(func() { close(w.stopC) })
	<-w.churnDone
}

// stop ends producing and waits (up to flushFor) for every buffered record
// to be acknowledged or failed, then stops consumers and churn.
func (w *workload) stop(flushFor time.Duration) error {
	close(w.stopP)
	ctx, cancel := context.WithTimeout(context.Background(), flushFor)
	defer cancel()
	var errs []error
	for _, p := range w.producers {
		if err := p.Flush(ctx); err != nil {
			errs = append(errs, fmt.Errorf("flush: %w (%d records still unanswered)", err, p.BufferedProduceRecords()))
		}
	}
	w.stopChurn()
	w.cancel()
	w.wg.Wait()
	return errors.Join(errs...)
}

func (w *workload) close() {
	for _, cl := range w.clients {
		cl.Close()
	}
}
