package meta

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// StorageMode says where a topic's data lives. It is chosen per topic when
// the topic is created; local and hybrid topics may later be changed into
// each other (see CanChangeTo), diskless ones never.
type StorageMode string

const (
	// StorageLocal keeps the WAL and segments on the leader's local disk (the default).
	StorageLocal StorageMode = "local"
	// StorageHybrid keeps the WAL locally and moves sealed segments to object storage.
	StorageHybrid StorageMode = "hybrid"
	// StorageDiskless writes batches straight to object storage; local disk holds only a cache.
	StorageDiskless StorageMode = "diskless"
)

// ErrUnsupportedStorageMode is returned by StorageMode.Supported for a mode
// this build cannot serve: every mode ParseStorageMode accepts is served
// in this release, so only a value that is not a storage mode at all (a
// record or a caller that skipped ParseStorageMode) gets it. It stays so
// that a mode added to the type before its data path lands can be refused
// the same way.
var ErrUnsupportedStorageMode = errors.New("storage mode not supported yet")

// Refused storage.mode changes of an existing topic (StorageMode.CanChangeTo).
var (
	ErrDisklessModeFixed    = errors.New("storage.mode of a diskless topic cannot be changed")
	ErrCannotBecomeDiskless = errors.New("a local or hybrid topic cannot become diskless")
)

// ParseStorageMode parses "local", "hybrid" or "diskless" (case-sensitive, as
// Kafka config values are).
func ParseStorageMode(s string) (StorageMode, error) {
	switch m := StorageMode(s); m {
	case StorageLocal, StorageHybrid, StorageDiskless:
		return m, nil
	}
	return "", fmt.Errorf("invalid storage.mode %q: must be local, hybrid or diskless", s)
}

// KeepsLocalData reports whether partitions of mode m hold data on their
// leader's disk (so they can only be led by the node that has it).
func (m StorageMode) KeepsLocalData() bool { return m == StorageLocal || m == StorageHybrid }

// NeedsObjectStore reports whether topics of mode m keep data in object
// storage (hybrid: sealed segments; diskless: everything), so that the
// cluster must have one to create them (see Cache.ObjectStoreReady).
func (m StorageMode) NeedsObjectStore() bool { return m == StorageHybrid || m == StorageDiskless }

// Supported reports whether this build can serve topics of mode m, and why
// not: local, hybrid and diskless all are. (Hybrid and diskless topics
// also need an object store in the cluster: see NeedsObjectStore and
// Cache.ObjectStoreReady.)
func (m StorageMode) Supported() error {
	switch m {
	case StorageLocal, StorageHybrid, StorageDiskless:
		return nil
	}
	return fmt.Errorf("%w: storage.mode=%s is not available in this release (local, hybrid and diskless are)", ErrUnsupportedStorageMode, m)
}

// CanChangeTo reports whether an existing topic of mode m may be changed to
// mode to (AlterConfigs, IncrementalAlterConfigs): staying is always
// allowed, and local and hybrid topics may become each other (both keep
// their partitions' data on the replicas' disks, so partition placement
// does not change). A diskless topic keeps its mode
// (ErrDisklessModeFixed), and no topic becomes diskless
// (ErrCannotBecomeDiskless): there is no migration of a log between a
// local disk and the diskless object tier. Whether the cluster can serve
// the new mode (an object store for hybrid) is the caller's check.
func (m StorageMode) CanChangeTo(to StorageMode) error {
	switch {
	case m == to:
		return nil
	case m == StorageDiskless:
		return ErrDisklessModeFixed
	case to == StorageDiskless:
		return ErrCannotBecomeDiskless
	case m.KeepsLocalData() && to.KeepsLocalData():
		return nil
	}
	return fmt.Errorf("storage.mode cannot change from %q to %q", m, to)
}

// TopicID is a topic's UUID. Kafka clients (Metadata v10+, Fetch v13+) use it
// to tell a deleted topic from a re-created one of the same name.
type TopicID [16]byte

// NewTopicID returns a random version-4 UUID.
func NewTopicID() TopicID {
	var id TopicID
	_, _ = rand.Read(id[:])
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id
}

// String is the hex form used in etcd and on disk.
func (id TopicID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether the id is unset.
func (id TopicID) IsZero() bool { return id == TopicID{} }

// MarshalJSON writes the hex form.
func (id TopicID) MarshalJSON() ([]byte, error) { return json.Marshal(id.String()) }

// UnmarshalJSON reads the hex form.
func (id *TopicID) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	raw, err := hex.DecodeString(s)
	if err != nil || len(raw) != 16 {
		return fmt.Errorf("invalid topic id %q", s)
	}
	copy(id[:], raw)
	return nil
}

// Topic is the stored definition of a topic.
type Topic struct {
	Name              string      `json:"name"`
	ID                TopicID     `json:"id"`
	Partitions        int32       `json:"partitions"`
	ReplicationFactor int16       `json:"replication_factor"`
	StorageMode       StorageMode `json:"storage_mode"`
	// Configs holds every explicitly set topic config (Kafka names), already
	// validated; defaults are not stored so that changing a server default
	// applies to topics that never overrode it.
	Configs map[string]string `json:"configs,omitempty"`
}

// Partition is the stored assignment of one partition.
type Partition struct {
	Topic     string  `json:"topic"`
	TopicID   TopicID `json:"topic_id"`
	Partition int32   `json:"partition"`
	// Leader is the id of the logsvc node that leads the partition, or ""
	// while the partition is offline (its home node is down).
	Leader string `json:"leader"`
	// LeaderEpoch increases on every leadership change (KIP-320); batches
	// are stamped with it and writes are fenced by it.
	LeaderEpoch int32 `json:"leader_epoch"`
	// Home is the node whose disk holds the partition's data, for storage
	// modes that keep data locally (local, hybrid). Such a partition is only
	// ever led by its home node: moving it elsewhere would start an empty
	// log. Empty for modes whose data is shared (diskless).
	Home string `json:"home,omitempty"`
	// Materialized tells, for modes that keep data locally, whether the
	// home node has created the partition's local log: false at creation,
	// set (by a compare-and-swap on the record) by the home node the first
	// time it opens the partition, before it takes a write. A partition
	// that is materialized must find its data on its home node; one that
	// is not may start empty there even at a leader epoch above 0 (fenced
	// while its home node was down before it ever opened it). nil: a record
	// written before this field existed (see MayHaveLocalData).
	Materialized *bool `json:"materialized,omitempty"`
	// Replicas are the nodes holding a copy of a partition whose data is
	// local (local, hybrid), preferred leader first (Kafka's assignment);
	// Home is Replicas[0]. Empty for diskless partitions (one logical copy
	// in object storage) and for records written before replication (read
	// them as Replicas = [Home]: see ReplicaSet).
	Replicas []string `json:"replicas,omitempty"`
	// ISR is the in-sync subset of Replicas: the replicas holding every
	// record below the leader's high watermark, the only ones that may be
	// elected leader (unclean.leader.election.enable aside). The leader
	// changes it by compare-and-swap on the record (Kafka's AlterPartition);
	// the controller removes dead followers. It is never emptied: the last
	// member stays even when it dies (the KIP-966 rule), so a replica that
	// missed acknowledged records can never be elected. Empty when Replicas
	// is (see InSyncReplicas).
	ISR []string `json:"isr,omitempty"`
	// AddingReplicas and RemovingReplicas describe a reassignment in
	// progress (Kafka's KIP-455): Replicas is then the target followed by
	// the replicas being removed; the new ones follow the leader and, once
	// all of them are in the ISR, the controller makes Replicas the target.
	AddingReplicas   []string `json:"adding_replicas,omitempty"`
	RemovingReplicas []string `json:"removing_replicas,omitempty"`
	// UncleanLeader marks a leader elected outside the ISR
	// (unclean.leader.election.enable, or an unclean ElectLeaders): it
	// leads with whatever log it holds, even none (its disk was replaced),
	// as Kafka's unclean leader does; acknowledged records may be lost.
	// Cleared by the next clean election or once the ISR grows again.
	UncleanLeader bool `json:"unclean_leader,omitempty"`

	// ModRevision is the etcd revision of the last change (not stored; the
	// cache fills it in) for compare-and-swap updates.
	ModRevision int64 `json:"-"`
}

// MayHaveLocalData reports whether the partition's home node may hold
// data for it, so that it must not start an empty log in its place.
// Records from before Materialized count as having data once their leader
// epoch moved past 0.
func (p Partition) MayHaveLocalData() bool {
	if p.Materialized != nil {
		return *p.Materialized
	}
	return p.LeaderEpoch > 0
}

// ReplicationFactor is the partition's replica count as Kafka tools report
// it: its replicas not counting those a reassignment is removing (1 for a
// diskless partition: one logical copy).
func (p Partition) ReplicationFactor() int16 {
	return int16(max(len(p.ReplicaSet())-len(p.RemovingReplicas), 1))
}

// ReplicaSet is the partition's replicas, preferred leader first: Replicas,
// or for a record without them its Home (local data) or its Leader
// (diskless: one logical replica, wherever it is led).
func (p Partition) ReplicaSet() []string {
	switch {
	case len(p.Replicas) > 0:
		return p.Replicas
	case p.Home != "":
		return []string{p.Home}
	case p.Leader != "":
		return []string{p.Leader}
	}
	return nil
}

// InSyncReplicas is the ISR, or for a record without one the ReplicaSet
// (a single replica is always in sync with itself).
func (p Partition) InSyncReplicas() []string {
	if len(p.ISR) > 0 {
		return p.ISR
	}
	return p.ReplicaSet()
}

// InISR reports whether node is in the partition's ISR.
func (p Partition) InISR(node string) bool { return slices.Contains(p.InSyncReplicas(), node) }

// IsReplica reports whether node holds a replica of the partition.
func (p Partition) IsReplica(node string) bool { return slices.Contains(p.ReplicaSet(), node) }

// Reassigning reports whether a reassignment is in progress.
func (p Partition) Reassigning() bool {
	return len(p.AddingReplicas) > 0 || len(p.RemovingReplicas) > 0
}

// CompleteReassignment switches a record whose reassignment has caught up
// (every adding replica in the ISR) to its target: the removed replicas
// leave the replica list and the ISR, the first target replica becomes the
// home, and a leader among the removed steps down (Leader "" at a new
// epoch: the controller elects from the ISR).
func (p *Partition) CompleteReassignment() {
	drop := func(s []string) []string {
		return slices.DeleteFunc(slices.Clone(s), func(x string) bool { return slices.Contains(p.RemovingReplicas, x) })
	}
	p.Replicas = drop(p.Replicas)
	p.ISR = drop(p.InSyncReplicas())
	p.Home = p.Replicas[0]
	if slices.Contains(p.RemovingReplicas, p.Leader) {
		p.Leader = ""
		p.LeaderEpoch++
	}
	p.AddingReplicas, p.RemovingReplicas = nil, nil
}

// Online reports whether the partition has a leader.
func (p Partition) Online() bool { return p.Leader != "" }

// LogNode is a registered log-service node.
type LogNode struct {
	ID string `json:"id"`
	// Addr is the host:port of its gRPC LogService.
	Addr string `json:"addr"`
	// ObjectStore says the node has an object store configured and so can
	// lead diskless partitions.
	ObjectStore bool `json:"object_store,omitempty"`
	// Rack is the node's rack (logsvc --rack; Kafka's broker.rack): replica
	// placement puts a partition's replicas on distinct racks first.
	Rack string `json:"rack,omitempty"`
	// BrokerID is the number Kafka clients see this node's replicas as
	// (Store.BrokerIDFor).
	BrokerID int32 `json:"broker_id,omitempty"`
	// TailOnly lists the hybrid partitions ("<topic>/<partition>", see
	// PartitionName) this node follows with only the tail of the leader's
	// local copy - a rebuilt or new replica starts at the object tier's
	// end - so it lacks the local history the leader serves from disk:
	// preferred-leader elections pass it over, and elections choose an
	// in-sync replica with history first (KIP-1023's follower fetch from
	// the tier).
	TailOnly []string `json:"tail_only,omitempty"`
}

// PartitionName is how LogNode.TailOnly names a partition.
func PartitionName(topic string, partition int32) string {
	return fmt.Sprintf("%s/%d", topic, partition)
}

// Gateway is a registered gateway: a Kafka "broker" as clients see it.
type Gateway struct {
	ID     string `json:"id"`
	NodeID int32  `json:"node_id"`
	Host   string `json:"host"`
	Port   int32  `json:"port"`
	Rack   string `json:"rack,omitempty"`
	// AdminAddr is where other gateways reach this gateway's admin gRPC
	// API (its advertised admin address); "" when it serves none. The
	// admin API forwards a group change to the gateway coordinating the
	// group.
	AdminAddr string `json:"admin_addr,omitempty"`
}

// Uploader is a registered uploader instance.
type Uploader struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
	// ObjectStore says the uploader has an object store configured.
	ObjectStore bool `json:"object_store,omitempty"`
}
