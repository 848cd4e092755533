package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamline-dev/streamline/services/cluster"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/objstore/objstoretest"
)

// Config shapes a campaign.
type Config struct {
	// Seed fixes the fault schedule (kinds, targets, durations, gaps) and
	// the admin churn's choices. The campaign prints it.
	Seed uint64
	// Duration is how long faults are injected (the workload runs a few
	// seconds longer on each side).
	Duration time.Duration
	// Modes are the storage modes of the data topics, one topic each, and
	// for local a second topic of replication factor 3
	// (min.insync.replicas=2) and a third of replication factor 3, the
	// exactly-once pipeline's input (eos.go). The hybrid topic is of
	// replication factor 3 (min.insync.replicas=2) too, with small
	// segments and local retention (topicConfigs). Default: every mode the product serves (local,
	// diskless, hybrid).
	Modes []meta.StorageMode
	// Partitions per data topic (default 6).
	Partitions int32
	// Rate is records per second per data topic (default 150).
	Rate int
	// ReportPath, if set, receives the report as JSON.
	ReportPath string
	// LogDir, if set, receives a copy of every process's log at the end
	// (pass or fail).
	LogDir string
	// plan, if set, replaces the seeded schedule (a scripted scenario).
	plan []step
}

func (c Config) withDefaults() Config {
	if len(c.Modes) == 0 {
		c.Modes = []meta.StorageMode{meta.StorageLocal, meta.StorageDiskless, meta.StorageHybrid}
	}
	if c.Partitions == 0 {
		c.Partitions = 6
	}
	if c.Rate == 0 {
		c.Rate = 150
	}
	if c.Duration == 0 {
		c.Duration = 2 * time.Minute
	}
	return c
}

// executed is one fault as it happened.
type executed struct {
	step
	injected, healed time.Time
	err              error
	recovery         time.Duration // heal -> every data partition acked a new record
	recovered        bool
}

// Report is a campaign's outcome, printed and optionally written as JSON.
type Report struct {
	Seed         uint64         `json:"seed"`
	Duration     string         `json:"duration"`
	FaultsByKind map[string]int `json:"faults_by_kind"`
	Produced     int            `json:"produced"`
	Acknowledged int            `json:"acknowledged"`
	Failed       int            `json:"failed_not_acknowledged"`
	Lost         int            `json:"lost"`
	Duplicated   int            `json:"duplicated"`
	Misplaced    int            `json:"misplaced"`
	Reordered    int            `json:"reordered"`
	Phantom      int            `json:"phantom"`
	RecoveryP50  string         `json:"recovery_p50"`
	RecoveryMax  string         `json:"recovery_max"`
	NotRecovered int            `json:"faults_without_recovery"`
	ReadyAfter   string         `json:"all_ready_after_faults"`
	ServingAfter string         `json:"all_partitions_serving_after_faults"`
	// AckedWhileEtcdDown counts acknowledgements given while etcd was
	// frozen or down (from 2 s after the fault began, for answers already
	// on their way, to its heal). A new batch cannot be acknowledged then
	// (every ack waits for etcd); these are retries of batches that became
	// durable before, answered from the producer state. The checker proves
	// each was really stored.
	AckedWhileEtcdDown int            `json:"acked_while_etcd_down"`
	AdminOps           map[string]int `json:"admin_ops"`
	// MergedSegments and IntakeRanges count the diskless manifest entries
	// at the end: merged segment objects and ranges still in intake
	// objects (the uploaders merge during the campaign).
	MergedSegments int `json:"merged_segments"`
	IntakeRanges   int `json:"intake_ranges"`
	// HybridSegments counts the hybrid topics' manifest entries at the
	// end (uploaded segments, merged by the uploaders as they go);
	// HybridTier describes each hybrid data partition: its log, the
	// tier's committed end and where its leader's local copy starts (the
	// read-back read below that from the object tier).
	HybridSegments int      `json:"hybrid_segments"`
	HybridTier     []string `json:"hybrid_tier,omitempty"`
	// PerTopic is the checker's counts and the recovery times per data
	// topic (one per storage mode, and local's replicated one).
	PerTopic []TopicReport `json:"per_topic"`
	// EOS is the exactly-once pipeline's outcome (nil without local).
	EOS               *EOSReport        `json:"exactly_once,omitempty"`
	Problems          []string          `json:"problems"`
	SkippedFaultKinds map[string]string `json:"skipped_fault_kinds,omitempty"`
}

// EOSReport is the exactly-once pipeline's share of a Report: its own
// counts (records consumed, polled again after an abort too; transactions
// committed, aborted, and Ends that failed; sessions started) and the
// checker's (output records read read_committed, input records below the
// final committed offsets, and the violations).
type EOSReport struct {
	Consumed       int    `json:"consumed"`
	Output         int    `json:"output_records"`
	BelowCommitted int    `json:"input_below_committed"`
	Committed      int    `json:"txn_committed"`
	Aborted        int    `json:"txn_aborted"`
	EndErrors      int    `json:"txn_end_errors"`
	ProduceErrors  int    `json:"txn_produce_errors"`
	OtherErrors    int    `json:"other_errors"`
	Sessions       int    `json:"sessions"`
	LastError      string `json:"last_error,omitempty"`
	Duplicated     int    `json:"duplicated"`
	Phantom        int    `json:"phantom"`
	Lost           int    `json:"lost"`
	Uncommitted    int    `json:"output_above_committed"`
}

// TopicReport is one data topic's share of a Report. Recovery is measured
// per fault as for the whole campaign, over this topic's partitions only.
type TopicReport struct {
	Topic        string `json:"topic"`
	Mode         string `json:"mode"`
	Replicas     int16  `json:"replicas"`
	Acknowledged int    `json:"acknowledged"`
	Failed       int    `json:"failed_not_acknowledged"`
	Lost         int    `json:"lost"`
	Duplicated   int    `json:"duplicated"`
	Misplaced    int    `json:"misplaced"`
	Reordered    int    `json:"reordered"`
	Phantom      int    `json:"phantom"`
	RecoveryP50  string `json:"recovery_p50"`
	RecoveryMax  string `json:"recovery_max"`
	NotRecovered int    `json:"faults_without_recovery"`
}

// Run runs a campaign against a fresh process cluster (etcd, 3 logsvc, 2
// uploaders, 2 gateways, versitygw) and fails t on any violation.
func Run(t *testing.T, cfg Config) Report {
	cfg = cfg.withDefaults()
	// make chaos runs go test without its timeout (the duration varies):
	// a campaign that hangs fails here, with every goroutine's stack.
	watchdog := time.AfterFunc(cfg.Duration+20*time.Minute, func() {
		debug.SetTraceback("all")
		panic(fmt.Sprintf("chaos: seed %d: campaign still running 20 minutes after its %v of faults: a hang", cfg.Seed, cfg.Duration))
	})
	defer watchdog.Stop()
	t.Logf("chaos: seed %d, %v of faults; replay with: make chaos SEED=%d DURATION=%v", cfg.Seed, cfg.Duration, cfg.Seed, cfg.Duration)

	// S3: versitygw (real) <- fault proxy (503 storms) <- toxiproxy link.
	endpoint, access, secret := objstoretest.StartVersityGW(t)
	s3faults, s3url := objstoretest.StartFaultProxy(t, endpoint)
	netw := newNetwork()
	s3link := cluster.Link{From: "all", To: "s3", Listen: cluster.FreeAddrs(t, 1)[0], Upstream: strings.TrimPrefix(s3url, "http://")}
	netw.add(t, s3link)
	t.Setenv("AWS_ACCESS_KEY_ID", access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	store := fmt.Sprintf("s3://%s/chaos?endpoint=http://%s&region=us-east-1&path_style=true&retry_rate_limit=false", objstoretest.BucketName, s3link.Listen)

	rep := Report{Seed: cfg.Seed, Duration: cfg.Duration.String(), FaultsByKind: map[string]int{}, SkippedFaultKinds: map[string]string{}}
	extra := map[string][]string{
		"logsvc": {"--object-store", store, "--diskless-batch-timeout", "50ms", "--retention-check-interval", "2s",
			"--replica-lag-time-max", "5s", "--leader-rebalance-interval", "20s", "--hybrid-upload-interval", "200ms"},
		"uploader": {"--object-store", store, "--gc-grace", "20s", "--gc-interval", "2s", "--gc-linger", "5s", "--merge-min-age", "15s", "--merge-interval", "3s", "--merge-target-bytes", "4194304"},
		// A 1 s transactional.id.expiration: the exactly-once pipeline
		// ends a transaction every few hundred ms, so its id expires
		// whenever a fault stalls it between transactions for a sweep
		// (every 10 s), and expiry races the pipeline's next transaction
		// under faults (its producer then gets INVALID_PRODUCER_ID_MAPPING
		// and a new session starts over with a new producer id).
		"gateway": {"--session-ttl", "3s", "--transactional-id-expiration", "1s"},
	}
	disks := map[string]string{}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("logsvc-%d", i)
		dir, err := mountTmpfs(t, "256m")
		if err != nil {
			rep.SkippedFaultKinds["disk-full"] = err.Error()
			t.Logf("chaos: disk-full fault skipped: cannot mount a size-limited tmpfs here (%v)", err)
			break
		}
		disks[name] = dir
		extra[name] = []string{"--data-dir", dir}
	}
	if len(disks) < 3 {
		for n := range disks {
			delete(extra, n)
		}
		disks = map[string]string{}
	}
	c := cluster.StartCluster(t, cluster.ClusterOptions{
		Uploaders: 2, SessionTTL: 3 * time.Second, HTTP: true, ExtraArgs: extra,
		Links: func(l cluster.Link) { netw.add(t, l) },
	})
	if cfg.LogDir != "" {
		t.Cleanup(func() { copyLogs(t, c, cfg.LogDir) })
	}
	e := &env{c: c, net: netw, s3: s3faults, disks: disks, names: map[string][]string{"all": c.Names()}}
	for _, k := range []string{"etcd", "logsvc", "uploader", "gateway"} {
		e.names[k] = c.NamesOf(k)
	}
	t.Logf("chaos: fault kinds\n%s", describe(e))
	plan := cfg.plan
	if plan == nil {
		plan = schedule(cfg.Seed, e, cfg.Duration)
	}
	var planText strings.Builder
	for i, s := range plan {
		fmt.Fprintf(&planText, "  %3d %s\n", i, s)
	}
	t.Logf("chaos: schedule (%d steps, cut off at %v)\n%s", len(plan), cfg.Duration, planText.String())

	var topics []dataTopic
	for _, m := range cfg.Modes {
		topics = append(topics, dataTopic{name: "data-" + string(m), mode: m, partitions: cfg.Partitions, group: "group-" + string(m)})
		if m == meta.StorageHybrid {
			// Replicated like local topics, and the leader uploads:
			// uploads die with their leader, a new leader carries on
			// from the manifest with its local tail.
			topics[len(topics)-1].replicas = 3
		}
		if m == meta.StorageLocal {
			// Replicated: leaders move under kills, pauses and
			// partitions, followers truncate and rebuild.
			topics = append(topics, dataTopic{name: "data-local-rf3", mode: m, partitions: cfg.Partitions, group: "group-local-rf3", replicas: 3})
			// The exactly-once pipeline's input (eos.go), replicated
			// like the one above, and so is its output.
			topics = append(topics, dataTopic{name: "eos-in", mode: m, partitions: cfg.Partitions, group: eosTxnID, replicas: 3, eosOut: "eos-out"})
		}
	}
	var allParts []tp
	for _, d := range topics {
		allParts = append(allParts, d.parts()...)
	}
	w := newWorkload(c.Bootstrap(), topics, cfg.Modes, cfg.Rate, cfg.Seed, t.Logf)
	defer w.close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	if err := w.start(ctx); err != nil {
		cancel()
		t.Fatalf("chaos: workload: %v", err)
	}
	cancel()
	time.Sleep(5 * time.Second) // a baseline before the first fault

	// The faults, in the schedule's time order, from one goroutine (the
	// harness's Kill and Restart may fail the test). A restart that takes
	// a while delays the events after it; none is skipped, and no fault
	// starts after Duration.
	done := make([]executed, len(plan))
	heals := make([]func() error, len(plan))
	began := time.Now()
	for _, ev := range timeline(plan) {
		s := plan[ev.i]
		if !ev.heal && s.at >= cfg.Duration {
			continue
		}
		if ev.heal && done[ev.i].injected.IsZero() {
			continue // never started
		}
		time.Sleep(time.Until(began.Add(ev.at)))
		x := &done[ev.i]
		if !ev.heal {
			x.step, x.injected = s, time.Now()
			heal, err := kindByName(s.kind).inject(e, s.target)
			if err != nil {
				x.err = err
				t.Logf("chaos: %s: inject failed: %v", s, err)
				heal = func() error { return nil }
			}
			heals[ev.i] = heal
			rep.FaultsByKind[s.kind]++
			if took := time.Since(x.injected); took > time.Second {
				t.Logf("chaos: %s: injecting took %v", s, took.Round(time.Millisecond))
			}
			continue
		}
		if err := heals[ev.i](); err != nil {
			t.Errorf("chaos: %s: heal failed: %v", s, err)
		}
		x.healed = time.Now()
		t.Logf("chaos: %s: healed after %v", s, x.healed.Sub(x.injected).Round(time.Millisecond))
	}
	done = slices.DeleteFunc(done, func(x executed) bool { return x.injected.IsZero() })

	// After the faults: every process ready within 30 s, every partition
	// takes produce and fetch within 60 s.
	ready, err := waitReady(c, 30*time.Second)
	rep.ReadyAfter = ready.Round(time.Millisecond).String()
	if err != nil {
		t.Errorf("chaos: not every process ready 30 s after the faults: %v", err)
	}
	w.stopChurn() // the topic list must hold still while every partition is probed
	serving, err := probe(w, c.Bootstrap(), 60*time.Second)
	rep.ServingAfter = serving.Round(time.Millisecond).String()
	if err != nil {
		t.Errorf("chaos: not every partition took produce and fetch within 60 s of the faults: %v", err)
	}
	time.Sleep(3 * time.Second) // consumers catch up a little, commits land

	if err := w.stop(2 * time.Minute); err != nil {
		t.Errorf("chaos: stopping the producers: %v", err)
	}
	adm, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	final := map[string]map[tp]int64{}
	for _, d := range topics {
		if d.eosOut != "" {
			// As an exactly-once consumer reads them: RequireStable,
			// waiting for the last transaction's offsets.
			offs, err := stableCommits(kadm.NewClient(adm), d.group, time.Minute)
			if err == nil {
				for p, o := range offs {
					w.h.commit(d.group, p, o, "final")
				}
				final[d.group] = offs
				continue
			}
			rep.Problems = append(rep.Problems, fmt.Sprintf("exactly-once: %v", err))
		}
		final[d.group] = w.readCommits(kadm.NewClient(adm), d.group, "final")
	}
	readStart := time.Now()
	stored, logStart, err := readAll(context.Background(), c.Bootstrap(), topics)
	t.Logf("chaos: read back %d partitions in %v", len(stored), time.Since(readStart).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("chaos: reading back: %v", err)
	}
	var eosOut map[tp]map[int64]string
	for _, d := range topics {
		if d.eosOut == "" {
			continue
		}
		readStart := time.Now()
		if eosOut, err = readCommitted(context.Background(), c.Bootstrap(), d.eosOut, time.Minute); err != nil {
			t.Fatalf("chaos: reading %s back (read_committed): %v", d.eosOut, err)
		}
		t.Logf("chaos: read %s back (read_committed) in %v", d.eosOut, time.Since(readStart).Round(time.Millisecond))
	}
	v := check(w.h, stored, logStart, final, topics, eosOut)
	mstore := meta.NewStore(c.Etcd(t), "")
	modes := topicModes(mstore)
	if err := mstore.ScanManifests(context.Background(), func(pm meta.PartitionManifest) error {
		for _, e := range pm.Entries {
			switch {
			case modes[pm.TopicID] == meta.StorageHybrid:
				rep.HybridSegments++
			case e.Segment != nil:
				rep.MergedSegments++
			default:
				rep.IntakeRanges++
			}
		}
		return nil
	}); err != nil {
		t.Logf("chaos: scanning manifests: %v", err)
	}
	rep.HybridTier, rep.Problems = hybridTier(t, c, mstore, disks, topics, stored, logStart, rep.Problems)

	// Recovery per fault: heal -> every data partition acked a record
	// handed to the producer after the heal.
	var recs []time.Duration
	for i := range done {
		done[i].recovery, done[i].recovered = w.h.recoveryAfter(done[i].healed, allParts)
		if done[i].recovered {
			recs = append(recs, done[i].recovery)
		} else {
			rep.NotRecovered++
		}
	}
	for _, x := range done {
		if x.target == "etcd" && (x.kind == "pause" || x.kind == "kill") {
			acks := w.h.ackedBetween(x.injected.Add(2*time.Second), x.healed)
			rep.AckedWhileEtcdDown += len(acks)
			for _, a := range acks[:min(len(acks), 5)] {
				t.Logf("chaos: acknowledged while etcd was down (a retry of a batch that became durable before, answered from producer state; lost would be a problem): %s", a)
			}
		}
	}
	for _, d := range topics {
		tr := TopicReport{Topic: d.name, Mode: string(d.mode), Replicas: max(d.replicas, 1)}
		if tc := v.perTopic[d.name]; tc != nil {
			tr.Acknowledged, tr.Lost, tr.Duplicated, tr.Misplaced, tr.Reordered, tr.Phantom = tc.acked, tc.lost, tc.duplicated, tc.misplaced, tc.reordered, tc.phantom
		}
		var trecs []time.Duration
		for _, x := range done {
			if r, ok := w.h.recoveryAfter(x.healed, d.parts()); ok {
				trecs = append(trecs, r)
			} else {
				tr.NotRecovered++
			}
		}
		tr.RecoveryP50 = percentile(trecs, 50).Round(time.Millisecond).String()
		tr.RecoveryMax = percentile(trecs, 100).Round(time.Millisecond).String()
		w.h.mu.Lock()
		for _, p := range d.parts() {
			tr.Failed += w.h.failed[p]
		}
		w.h.mu.Unlock()
		rep.PerTopic = append(rep.PerTopic, tr)
	}
	w.h.mu.Lock()
	rep.Produced = w.h.produced
	for _, n := range w.h.failed {
		rep.Failed += n
	}
	rep.AdminOps = w.h.admin
	if eosOut != nil {
		e := w.h.eos
		rep.EOS = &EOSReport{Consumed: e.consumed, Output: v.eos.output, BelowCommitted: v.eos.belowCommitted,
			Committed: e.committed, Aborted: e.aborted, EndErrors: e.endErrors, ProduceErrors: e.produceErrors,
			OtherErrors: e.failed, Sessions: e.sessions, LastError: e.lastErr,
			Duplicated: v.eos.duplicated, Phantom: v.eos.phantom, Lost: v.eos.lost, Uncommitted: v.eos.uncommitted}
	}
	w.h.mu.Unlock()
	rep.Acknowledged, rep.Lost, rep.Duplicated, rep.Misplaced, rep.Reordered, rep.Phantom = v.acked, v.lost, v.duplicated, v.misplaced, v.reordered, v.phantom
	rep.RecoveryP50 = percentile(recs, 50).Round(time.Millisecond).String()
	rep.RecoveryMax = percentile(recs, 100).Round(time.Millisecond).String()
	rep.Problems = append(append(v.problems, rep.Problems...), scanLogs(c)...)

	t.Logf("chaos: report\n%s", rep.text(done))
	if cfg.ReportPath != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(cfg.ReportPath, b, 0o644); err != nil {
			t.Errorf("chaos: report: %v", err)
		}
	}
	if len(rep.Problems) > 0 {
		t.Errorf("chaos: seed %d: %d problems (replay: make chaos SEED=%d DURATION=%v):\n  %s",
			cfg.Seed, len(rep.Problems), cfg.Seed, cfg.Duration, strings.Join(rep.Problems, "\n  "))
	}
	if rep.EOS != nil && rep.EOS.Output == 0 {
		t.Errorf("chaos: the exactly-once pipeline committed no output: it checked nothing")
	}
	if rep.Acknowledged == 0 {
		t.Errorf("chaos: nothing was acknowledged: the campaign checked nothing")
	}
	return rep
}

func (r Report) text(done []executed) string {
	var b strings.Builder
	kinds := make([]string, 0, len(r.FaultsByKind))
	for k := range r.FaultsByKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	fmt.Fprintf(&b, "  seed %d, faults for %s: %d injected\n", r.Seed, r.Duration, len(done))
	for _, k := range kinds {
		fmt.Fprintf(&b, "    %-12s %d\n", k, r.FaultsByKind[k])
	}
	fmt.Fprintf(&b, "  records: %d produced, %d acknowledged, %d failed (not acknowledged)\n", r.Produced, r.Acknowledged, r.Failed)
	fmt.Fprintf(&b, "  lost %d, duplicated %d, misplaced %d, reordered %d, phantom %d\n", r.Lost, r.Duplicated, r.Misplaced, r.Reordered, r.Phantom)
	fmt.Fprintf(&b, "  recovery after a fault (heal -> every partition acks a new record): p50 %s, max %s, %d faults without recovery before the end\n", r.RecoveryP50, r.RecoveryMax, r.NotRecovered)
	fmt.Fprintf(&b, "  per data topic:\n    %-16s %-9s %3s %8s %6s %5s %4s %9s %9s %7s %8s %8s %s\n",
		"topic", "mode", "rf", "acked", "failed", "lost", "dup", "misplaced", "reordered", "phantom", "rec p50", "rec max", "no recovery")
	for _, tr := range r.PerTopic {
		fmt.Fprintf(&b, "    %-16s %-9s %3d %8d %6d %5d %4d %9d %9d %7d %8s %8s %d\n", tr.Topic, tr.Mode, tr.Replicas, tr.Acknowledged, tr.Failed,
			tr.Lost, tr.Duplicated, tr.Misplaced, tr.Reordered, tr.Phantom, tr.RecoveryP50, tr.RecoveryMax, tr.NotRecovered)
	}
	if e := r.EOS; e != nil {
		fmt.Fprintf(&b, "  exactly-once pipeline: %d records consumed, %d output (read_committed), %d input records below the committed offsets; transactions: %d committed, %d aborted, %d End errors, %d with produce errors; %d sessions, %d other errors\n",
			e.Consumed, e.Output, e.BelowCommitted, e.Committed, e.Aborted, e.EndErrors, e.ProduceErrors, e.Sessions, e.OtherErrors)
		fmt.Fprintf(&b, "  exactly-once: duplicated %d, phantom %d, lost %d, output above the committed offset %d\n", e.Duplicated, e.Phantom, e.Lost, e.Uncommitted)
		if e.LastError != "" {
			fmt.Fprintf(&b, "  exactly-once pipeline's last error: %s\n", e.LastError)
		}
	}
	fmt.Fprintf(&b, "  after the faults: all processes ready in %s, all partitions serving in %s\n", r.ReadyAfter, r.ServingAfter)
	fmt.Fprintf(&b, "  acknowledged while etcd was down: %d\n", r.AckedWhileEtcdDown)
	fmt.Fprintf(&b, "  admin ops: %v\n", r.AdminOps)
	fmt.Fprintf(&b, "  diskless manifests at the end: %d merged segments, %d ranges in intake objects\n", r.MergedSegments, r.IntakeRanges)
	if len(r.HybridTier) > 0 {
		fmt.Fprintf(&b, "  hybrid manifests at the end: %d segments; data partitions:\n", r.HybridSegments)
		for _, l := range r.HybridTier {
			fmt.Fprintf(&b, "    %s\n", l)
		}
	}
	for _, x := range done {
		rec := "no recovery seen"
		if x.recovered {
			rec = "recovered in " + x.recovery.Round(time.Millisecond).String()
		}
		if x.err != nil {
			rec = "not injected: " + x.err.Error()
		}
		fmt.Fprintf(&b, "    %-56s %s\n", x.step.String(), rec)
	}
	return b.String()
}

// mountTmpfs mounts a tmpfs of size on a new directory (as root), so a
// fault can fill it; it is unmounted when the test ends, after the
// processes are gone.
func mountTmpfs(t *testing.T, size string) (string, error) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		return "", fmt.Errorf("mount -t tmpfs: %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir, nil
}

// waitReady waits until every process runs and serves: services answer
// /readyz with 200, etcd answers a read.
func waitReady(c *cluster.Cluster, within time.Duration) (time.Duration, error) {
	start := time.Now()
	hc := &http.Client{Timeout: 2 * time.Second}
	var last error
	for time.Since(start) < within {
		last = nil
		for _, n := range c.Names() {
			if c.Node(n).Exited() {
				return time.Since(start), fmt.Errorf("%s exited", n)
			}
			if n == "etcd" {
				if err := etcdReady(c); err != nil {
					last = fmt.Errorf("etcd: %w", err)
				}
				continue
			}
			resp, err := hc.Get("http://" + c.HTTPAddr(n) + "/readyz")
			if err != nil {
				last = fmt.Errorf("%s: %w", n, err)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				last = fmt.Errorf("%s: /readyz %s", n, resp.Status)
			}
		}
		if last == nil {
			return time.Since(start), nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return time.Since(start), last
}

func etcdReady(c *cluster.Cluster) error {
	resp, err := http.Get(c.EtcdEndpoints()[0] + "/health")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/health %s", resp.Status)
	}
	return nil
}

// probe produces one record to every partition of every topic (data and
// churn topics alike) and fetches it back, within the deadline; it returns
// how long that took.
func probe(w *workload, seeds []string, within time.Duration) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordDeliveryTimeout(within), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var recs []*kgo.Record
	for {
		topics, err := kadm.NewClient(cl).ListTopics(ctx)
		if err == nil {
			err = topics.Error()
		}
		if err != nil {
			if ctx.Err() != nil {
				return time.Since(start), fmt.Errorf("list topics: %w", err)
			}
			time.Sleep(250 * time.Millisecond)
			continue
		}
		topics.EachPartition(func(p kadm.PartitionDetail) {
			v := fmt.Sprintf("probe/%s/%d", p.Topic, p.Partition)
			w.h.produce(v)
			recs = append(recs, &kgo.Record{Topic: p.Topic, Partition: p.Partition, Value: []byte(v)})
		})
		break
	}
	issued := time.Now()
	at := map[string]map[int32]kgo.Offset{}
	for _, r := range cl.ProduceSync(ctx, recs...) {
		p := tp{r.Record.Topic, r.Record.Partition}
		if r.Err != nil {
			w.h.fail(p)
			return time.Since(start), fmt.Errorf("produce to %s: %w", p, r.Err)
		}
		w.h.acked(p, ack{seq: -1, offset: r.Record.Offset, issued: issued, acked: time.Now(), valueKey: string(r.Record.Value)})
		if at[p.topic] == nil {
			at[p.topic] = map[int32]kgo.Offset{}
		}
		at[p.topic][p.partition] = kgo.NewOffset().At(r.Record.Offset)
	}
	cl.AddConsumePartitions(at)
	want := len(recs)
	seen := map[string]bool{}
	for len(seen) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return time.Since(start), fmt.Errorf("fetch: %d of %d probes read back", len(seen), want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if strings.HasPrefix(string(r.Value), "probe/") {
				seen[string(r.Value)] = true
			}
		})
	}
	return time.Since(start), nil
}

// scanLogs reports every process log line with a Go panic or fatal error.
func scanLogs(c *cluster.Cluster) []string {
	var out []string
	for _, n := range c.Names() {
		b, err := os.ReadFile(c.Node(n).LogPath())
		if err != nil {
			out = append(out, fmt.Sprintf("%s: log: %v", n, err))
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "panic:") || strings.Contains(line, "fatal error:") {
				out = append(out, fmt.Sprintf("%s log: %s", n, strings.TrimSpace(line)))
			}
		}
	}
	return out
}

// copyLogs copies every process's log into dir.
func copyLogs(t *testing.T, c *cluster.Cluster, dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("chaos: logs: %v", err)
		return
	}
	for _, n := range c.Names() {
		b, err := os.ReadFile(c.Node(n).LogPath())
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, n+".log"), b, 0o644)
		}
		if err != nil {
			t.Logf("chaos: log of %s: %v", n, err)
		}
	}
	t.Logf("chaos: process logs copied to %s", dir)
}

// topicModes is the storage mode of every topic, by id.
func topicModes(store *meta.Store) map[meta.TopicID]meta.StorageMode {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := map[meta.TopicID]meta.StorageMode{}
	names, err := store.TopicNames(ctx)
	if err != nil {
		return out
	}
	for id, name := range names {
		if tp, err := store.GetTopic(ctx, name); err == nil && tp.ID == id {
			out[id] = tp.StorageMode
		}
	}
	return out
}

// hybridTier describes each hybrid data partition at the end: the log the
// read-back read, the object tier's committed end (etcd) and the first
// local segment on its leader's disk. Uploads resume by themselves after
// faults, so once the producers stopped every partition's tier must reach
// the base of its leader's active segment (everything rolled is uploaded:
// the active segment is never, as in Kafka, and a quiet partition's stays
// active) within a minute (the upload backoff is at most 5 s); one that
// does not is a problem.
func hybridTier(t *testing.T, c *cluster.Cluster, store *meta.Store, disks map[string]string, topics []dataTopic,
	stored map[tp]map[int64]string, logStart map[tp]int64, problems []string) ([]string, []string) {
	const within = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), within+30*time.Second)
	defer cancel()
	cache := meta.NewCache(store, slog.New(slog.DiscardHandler))
	if err := cache.Start(ctx); err != nil {
		t.Logf("chaos: hybrid tier: %v", err)
		return nil, problems
	}
	defer cache.Close()
	ids := map[string]meta.TopicID{}
	for _, d := range topics {
		if d.mode != meta.StorageHybrid {
			continue
		}
		topic, err := store.GetTopic(ctx, d.name)
		if err != nil {
			t.Logf("chaos: hybrid tier: %v", err)
			continue
		}
		ids[d.name] = topic.ID
	}
	began := time.Now()
	for {
		var out, lagging []string
		for _, d := range topics {
			id, ok := ids[d.name]
			if !ok {
				continue
			}
			leaders := map[int32]string{}
			for _, pa := range cache.Partitions(d.name) {
				leaders[pa.Partition] = pa.Leader
			}
			for _, p := range d.parts() {
				end := logStart[p] + int64(len(stored[p]))
				tierEnd, _, err := store.CommittedEnd(ctx, id, p.partition)
				if err != nil {
					t.Logf("chaos: hybrid tier of %s: %v", p, err)
					continue
				}
				leader, local, active := leaders[p.partition], "unknown", int64(-1)
				if leader != "" {
					dir := disks[leader]
					if dir == "" {
						dir = c.DataDir(leader)
					}
					if from, last, ok := segmentBases(filepath.Join(dir, "partitions", fmt.Sprintf("%s-%d", id, p.partition))); ok {
						local, active = strconv.FormatInt(from, 10), last
					}
				}
				line := fmt.Sprintf("%s: log [%d, %d), tier committed to %d, leader %s's local segments from %s, active from %d", p, logStart[p], end, tierEnd, leader, local, active)
				out = append(out, line)
				if active < 0 || tierEnd < min(active, end) {
					lagging = append(lagging, line)
				}
			}
		}
		if len(lagging) == 0 {
			if waited := time.Since(began); waited > time.Second {
				t.Logf("chaos: hybrid tiers caught up %v after the read-back", waited.Round(time.Millisecond))
			}
			return out, problems
		}
		if time.Since(began) > within {
			for _, l := range lagging {
				problems = append(problems, fmt.Sprintf("hybrid uploads stalled: %v after the workload stopped, %s (rolled segments above the tier)", within, l))
			}
			return out, problems
		}
		time.Sleep(time.Second)
	}
}

// firstSegment is the base offset of the first segment file in a
// partition directory.
func firstSegment(dir string) (int64, bool) {
	first, _, ok := segmentBases(dir)
	return first, ok
}

// segmentBases are the base offsets of the first and the last (active)
// segment files in a partition directory.
func segmentBases(dir string) (first, last int64, ok bool) {
	segs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, s := range segs {
		if o, err := strconv.ParseInt(strings.TrimSuffix(filepath.Base(s), ".log"), 10, 64); err == nil {
			if !ok || o < first {
				first = o
			}
			if !ok || o > last {
				last = o
			}
			ok = true
		}
	}
	return first, last, ok
}
