package meta

import (
	"fmt"
	"strconv"
	"strings"
)

// DefaultPrefix is the etcd key prefix used when none is configured.
const DefaultPrefix = "/streamline/"

// keys builds every etcd key from one prefix, so the schema lives in one place.
type keys struct{ prefix string }

func newKeys(prefix string) keys {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return keys{prefix}
}

func (k keys) topics() string           { return k.prefix + "topics/" }
func (k keys) topic(name string) string { return k.topics() + name }
func (k keys) partitions() string       { return k.prefix + "partitions/" }
func (k keys) topicPartitions(t string) string {
	return k.partitions() + t + "/"
}
func (k keys) partition(t string, p int32) string {
	return fmt.Sprintf("%s%05d", k.topicPartitions(t), p)
}
func (k keys) nodes(kind string) string    { return k.prefix + "nodes/" + kind + "/" }
func (k keys) node(kind, id string) string { return k.nodes(kind) + id }
func (k keys) producerIDCounter() string   { return k.prefix + "counters/producer-id" }
func (k keys) all() string                 { return k.prefix }

// parsePartitionKey splits "<prefix>partitions/<topic>/<n>".
func (k keys) parsePartitionKey(key string) (topic string, p int32, ok bool) {
	rest, found := strings.CutPrefix(key, k.partitions())
	if !found {
		return "", 0, false
	}
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.ParseInt(rest[i+1:], 10, 32)
	if err != nil {
		return "", 0, false
	}
	return rest[:i], int32(n), true
}

const (
	kindLogsvc   = "logsvc"
	kindGateway  = "gateway"
	kindUploader = "uploader"
)
