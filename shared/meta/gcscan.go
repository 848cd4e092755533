package meta

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// gcScanPage is how many manifest keys ReferencedObjects reads per request,
// keeping each response far below gRPC's message limits.
const gcScanPage = 500

func (k keys) allManifests() string { return k.prefix + "manifests/" }

// ReferencedObjects returns the key of every object that any manifest
// range entry references (manifests/<topicID>/<partition>/r/<last>). It is
// the garbage collector's definition of "in use": an object absent from it
// is unreferenced. Whoever adds another kind of reference to objects (such
// as merged segments) must make this method see it.
//
// The scan is read in pages of keys and values, all at the revision of the
// first page, so the result is one consistent snapshot of etcd; the
// snapshot is never older than the call. If etcd compacts that revision
// during the scan, the call fails (retry it) instead of mixing revisions.
// A range entry that does not decode is an error too: the caller cannot
// know what it references.
func (s *Store) ReferencedObjects(ctx context.Context) (map[string]struct{}, error) {
	prefix := s.k.allManifests()
	end := clientv3.GetPrefixRangeEnd(prefix)
	out := map[string]struct{}{}
	from := prefix
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(gcScanPage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Get(ctx, from, opts...)
		if err != nil {
			return nil, fmt.Errorf("meta: scan manifests: %w", err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			if !strings.Contains(string(kv.Key[len(prefix):]), "/r/") {
				continue // a committed end ("e"): no object
			}
			var c struct {
				Object string `json:"object"`
			}
			if err := json.Unmarshal(kv.Value, &c); err != nil {
				return nil, fmt.Errorf("meta: corrupt manifest %s: %w", kv.Key, err)
			}
			if c.Object == "" {
				return nil, fmt.Errorf("meta: manifest %s names no object", kv.Key)
			}
			out[c.Object] = struct{}{}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return out, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}
