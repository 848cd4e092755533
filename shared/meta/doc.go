// Package meta is Streamline's metadata in etcd: the key schema, the typed
// values stored under it, the operations that change them (each one etcd
// transaction) and a watched in-memory cache that gateways and log-service
// nodes read from.
//
// etcd is the only metadata store. Values are JSON (readable with etcdctl)
// and carry no secrets. The layout under a prefix (default "/streamline/"):
//
//	topics/<name>                       Topic: id, partitions, storage mode, configs
//	partitions/<name>/<%05d partition>  Partition: leader logsvc node, leader epoch, home node, replicas, ISR, reassignment
//	controller/<lease>                  controller election (etcd concurrency.Election)
//	nodes/logsvc/<id>                   LogNode, under the node's lease
//	nodes/gateway/<id>                  Gateway, under the gateway's lease
//	nodes/uploader/<id>                 Uploader, under the uploader's lease
//	counters/producer-id                last producer id handed out
//	counters/logsvc-broker-id           next broker id for a log-service node
//	broker-ids/logsvc/<id>              the node's broker id (Kafka's replica ids)
//	groupshards/<%03d shard>            gateway coordinating the shard's groups, under its lease
//	groupmeta/<escaped group>           GroupMeta: generation, protocol, members, assignments
//	groupoffsets/<escaped group>/<topic>/<%05d partition>  committed GroupOffset
//	grouptxnoffsets/<escaped group>/<producer id>  GroupTxnOffsets: offsets pending in a transaction (grouptxn.go)
//	grouptxnmarkers/<escaped group>/<producer id>  GroupTxnMarker: a transaction's end, until the group's coordinator applies it
//	txns/<escaped transactional id>     TxnMeta: producer id and epoch, state, partitions, groups, timeout (txns.go)
//	txn-coordinator-epochs/<%03d shard> last gateway to coordinate the shard's transactions; its version is the coordinator epoch
//	topic-collisions/<name, '.' as '_'> the topic holding that name under Kafka's '.'/'_' collision rule
//	manifests/<topic id>/...            committed ranges and segments in object storage (manifest.go)
//	deleted-topics/<topic id>           DeletedTopic: a deleted topic whose manifest is still being deleted (deletedtopics.go)
//
// Creating or deleting a topic writes the topic key, all its partition
// keys and its collision key (collision.go) in one transaction, so readers
// never see a topic without partitions; a delete removes the manifest in
// that transaction too unless it is larger than ReapChunkKeys, which
// ReapDeletedTopics then deletes in chunks.
package meta
