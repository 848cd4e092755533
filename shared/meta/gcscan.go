package meta

import (
	"context"
	"fmt"
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
	out := map[string]struct{}{}
	err := s.ScanManifests(ctx, func(pm PartitionManifest) error {
		for _, e := range pm.Entries {
			if e.Object == "" {
				return fmt.Errorf("meta: a manifest entry of %s-%d at %d names no object", pm.TopicID, pm.Partition, e.LastOffset)
			}
			out[e.Object] = struct{}{}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
