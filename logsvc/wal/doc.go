// Package wal is the node-level write-ahead log of a log-service node. All
// local-mode partitions of the node append their Kafka record batches
// (opaque bytes) to one WAL, so a burst of produce requests across many
// partitions costs one fsync instead of one per partition.
//
// # Durability protocol
//
//  1. A partition calls Append and waits on the returned channel. A record
//     is acknowledged to producers only after that channel yields nil,
//     which means the record and every record with a lower sequence number
//     have been written and fsynced.
//  2. The partition then writes the batch to its segment file, which is
//     fsynced lazily (e.g. on roll or on a timer).
//  3. At startup the node calls Replay before the first Append and
//     re-applies every record whose offset its segments lost.
//  4. Periodically the node calls Prune with the highest WAL sequence
//     number that each partition has durably in its segments; sealed WAL
//     files whose every record is covered are recycled as the next file
//     (prealloc.go) or renamed out of the WAL and given back to the file
//     system a step at a time in the background (reclaim.go).
//
// # Group commit
//
// One writer goroutine owns the active file. It takes everything queued,
// encodes it into one buffer, writes it with one write, fsyncs once and
// completes the callers' channels in sequence order. There is no timer:
// appends that arrive while an fsync is in progress simply form the next
// group, so a lone producer pays one fsync latency and a busy node
// amortizes each fsync over many records. The queue is bounded in bytes and
// records; when it is full Append blocks (backpressure) and waiters are
// admitted in arrival order.
//
// An fsync error poisons the WAL: the group and every later Append fail.
// On Linux a failed fsync may have dropped the dirty pages or marked them
// clean, and the error is reported once; a retried fsync can then succeed
// without the data being on disk ("fsyncgate"). After a failure nothing is
// known about what is durable, so the only safe recovery is to restart the
// node, which replays what is actually on disk.
//
// # Files
//
// WAL files live in one directory and are named wal-<first seq>.log with
// the sequence number in 20 zero-padded decimal digits, so lexical order is
// sequence order. The file is rolled once it reaches Options.FileBytes; a
// new file is created (and the directory fsynced) only after the previous
// file has been fsynced, so only the last file can have a torn tail.
// Sequence numbers start at 1 and continue across restarts: Open derives
// the next one from the last intact record or, if later files are empty or
// were pruned, from the name of the newest file.
//
// # Frame format
//
// A file is a sequence of frames, all integers big-endian:
//
//	frame   = length uint32 | crc uint32 | payload (length bytes)
//	payload = version uint8 (=1) | seq uint64 | offset int64 |
//	          streamLen uint16 | stream (streamLen bytes) | data
//
// crc is CRC-32C (Castagnoli) of payload. Within one file the seq of
// consecutive frames increases by exactly one, starting at the seq in the
// file name. data is the Kafka record batch and runs to the end of the
// payload. A length outside [20, 256 MiB] is corrupt, so a garbage header
// never makes the reader allocate a huge buffer.
//
// # Recovery
//
// Open scans every file. In the last file, the first frame that is torn
// (runs past end of file), fails its CRC, has a bad length or version, or
// carries an unexpected seq ends the log: the file is truncated there and
// the truncation fsynced before anything new is appended. Checking the seq
// and not only the CRC matters because after a crash some file systems
// expose stale blocks of deleted files (e.g. old WAL files, full of valid
// frames) in the unsynced tail. In any other file such a frame means data
// that was acknowledged is damaged; Open fails with ErrCorrupt rather than
// silently dropping it. Empty files at the end are removed.
//
// # Preallocation
//
// With Options.Preallocate a new file starts as a spare of FileBytes
// zeros prepared in the background, and frames overwrite the zeros, which
// makes each fsync cheaper (prealloc.go). Such a file is cut to its frames
// before the next file is created, so only the last file can end in zeros,
// and recovery treats them as it treats any torn tail.
//
// # Direct I/O
//
// With Options.DirectIO files are written with O_DIRECT in whole 4 KiB
// blocks: each write re-writes the frames of the block holding the end of
// the file (unchanged bytes, which a crash cannot tear, see direct.go),
// then the new frames, then zeros to the end of the block. The zeros are
// a torn tail to recovery and are cut when a file is sealed; the format is
// the same with and without direct I/O.
package wal
