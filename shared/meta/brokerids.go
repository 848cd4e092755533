package meta

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Broker ids of log-service nodes. Kafka names replicas by numeric broker
// id (Metadata's replica and ISR lists, AlterPartitionReassignments,
// ElectLeaders), while a log-service node is named by a string. Each node
// gets a number the first time it registers, kept for good under
//
//	broker-ids/logsvc/<node id>   the number, in decimal
//	counters/logsvc-broker-id     the next number to hand out
//
// Numbers start at FirstLogBrokerID, above the gateways' Kafka node ids
// (the brokers clients connect to), so a replica id never names a gateway.

// FirstLogBrokerID is the broker id of the first log-service node.
const FirstLogBrokerID = 1000

func (k keys) brokerIDs() string           { return k.prefix + "broker-ids/logsvc/" }
func (k keys) brokerID(node string) string { return k.brokerIDs() + node }
func (k keys) brokerIDCounter() string     { return k.prefix + "counters/logsvc-broker-id" }
func (k keys) parseBrokerIDKey(key string) (string, bool) {
	return strings.CutPrefix(key, k.brokerIDs())
}

// BrokerIDFor returns the broker id of log-service node id, handing out
// the next free one (a compare-and-swap on the counter) if it has none.
func (s *Store) BrokerIDFor(ctx context.Context, node string) (int32, error) {
	key, counter := s.k.brokerID(node), s.k.brokerIDCounter()
	for range 32 {
		resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(key), clientv3.OpGet(counter)).Commit()
		if err != nil {
			return 0, err
		}
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			return parseBrokerID(string(kvs[0].Value))
		}
		next, cmp := int32(FirstLogBrokerID), clientv3.Compare(clientv3.CreateRevision(counter), "=", 0)
		if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
			if next, err = parseBrokerID(string(kvs[0].Value)); err != nil {
				return 0, err
			}
			cmp = clientv3.Compare(clientv3.ModRevision(counter), "=", kvs[0].ModRevision)
		}
		tx, err := s.cli.Txn(ctx).
			If(cmp, clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, strconv.Itoa(int(next))), clientv3.OpPut(counter, strconv.Itoa(int(next)+1))).
			Commit()
		if err != nil {
			return 0, err
		}
		if tx.Succeeded {
			return next, nil
		}
	}
	return 0, ErrConflict
}

func parseBrokerID(v string) (int32, error) {
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid broker id %q in etcd", v)
	}
	return int32(n), nil
}

// BrokerID is the broker id of log-service node id (BrokerIDFor), or
// false if it never registered since broker ids exist.
func (c *Cache) BrokerID(node string) (int32, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	id, ok := c.brokerIDs[node]
	return id, ok
}

// NodeByBrokerID is the log-service node with broker id id.
func (c *Cache) NodeByBrokerID(id int32) (string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for node, b := range c.brokerIDs {
		if b == id {
			return node, true
		}
	}
	return "", false
}
