// Package chaos is Streamline's seeded fault campaign (`make chaos`): a
// process cluster — streamline-etcd, 3 logsvc, 2 uploaders, 2 gateways and
// a real S3-protocol server (versitygw) — runs a workload while faults are
// injected one after another, and a checker then proves nothing
// acknowledged was lost, duplicated or moved.
//
// Workload (workload.go): per storage mode in Config.Modes one data topic,
// for local also one of replication factor 3 (min.insync.replicas=2), each
// with an idempotent acks=all franz-go producer (each value names its
// partition and sequence) and a consumer group of two members that commit
// after processing (rebalances blocked in between); admin churn creates,
// grows, reconfigures, trims (DeleteRecords) and deletes topics of every
// mode, and also reconfigures and trims the data topics. Hybrid topics
// (the data topic is of replication factor 3) roll 16 KiB segments every
// 5 s at most and keep 48 KiB / 20 s locally, and the logsvc nodes look for
// segments to upload every 200 ms, so segment uploads, their commits and
// local deletions run under every fault (kills of the leader or the
// uploader mid-upload, S3 storms and outages); the read-back reads them
// from their log start, below the local copy from the object tier.
// An exactly-once pipeline (eos.go) runs through every fault: a franz-go
// GroupTransactSession (transactional id and group "chaos-eos",
// read_committed, RequireStableFetchOffsets) consumes a third local data
// topic of replication factor 3, "eos-in" (produced like the others, never
// trimmed or reconfigured by the churn, no other consumer), and writes
// each value prefixed "eos:" to the same partition of "eos-out" (also
// replicated), one transaction per poll that commits the group's offsets
// too; an End that aborts rewinds the session, one that fails replaces
// it. At the end it finishes its transaction and closes.
//
// Faults (faults.go, one list, faultKinds): SIGKILL + restart and
// SIGSTOP/SIGCONT of any process including etcd; a clean etcd restart;
// toxiproxy (the library, in the test process) latency, connection resets
// and blackholes on every proxied link — each process to etcd, the gateways
// to each logsvc, the logsvc nodes to each uploader, everything to S3; S3
// 503 SlowDown storms (objstoretest.FaultProxy); a logsvc data disk that
// fills up (each logsvc's --data-dir is a 256 MiB tmpfs the test mounts as
// root; without mount rights the kind is skipped and the report says so).
// The schedule — kinds, targets, durations and gaps — is a pure function
// of the seed and the cluster's shape, printed at the start: the same seed
// replays the same faults (their effects still depend on timing).
//
// Checker (checker.go, history.go): after the faults every process must be
// ready within 30 s and every data partition take a produce and a fetch
// within 60 s; then every data partition is read from its log start to its
// end and compared with the history: each acknowledged record exactly once
// at its acknowledged offset (records below an offset a DeleteRecords asked
// for excepted), no offset with two records, the producer's order per
// partition, unacknowledged records at most once, nothing nobody sent, log
// starts never past what DeleteRecords asked, committed offsets never
// moving backwards (read from the cluster three times a second), and a
// committed offset meaning every record below it was processed; every
// hybrid data partition's object tier catches up with its log within a
// minute once the producers stopped (uploads resume by themselves); no
// process log holds "panic:" or "fatal error:". Exactly-once (checkEOS):
// with the group's final offsets read with RequireStable (retried while
// UNSTABLE_OFFSET_COMMIT) and eos-out read read_committed from its start
// once every transaction ended (last stable offset = high watermark), no
// output value twice, every output value "eos:" and a record of the
// input log, every input record below the committed offset output
// exactly once, none at or above it output; the pipeline's End errors
// and aborts are only counted.
//
// Why no linearizability checker (porcupine): every acknowledgement
// carries the offset the record got, and the final read observes the
// whole log, so each operation's effect is checked exactly rather than
// searched for among interleavings; for committed offsets the only
// property Kafka promises under this workload (one owner per partition per
// generation, commit after processing) is monotonicity, checked directly.
//
// To extend: a new storage mode joins Config.Modes' default; a new fault
// is one faultKinds entry (targets, inject returning heal, durations); a
// new property is a check in check().
package chaos
