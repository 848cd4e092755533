// Package segment stores one Kafka partition's local log: a directory of
// segment files, each with a sparse offset index and a time index, rolled by
// size and age, trimmed by retention, and recovered after a crash.
//
// Record batches are stored byte for byte as they were appended (already
// validated, with their baseOffset patched by the caller). Durability comes
// from the node-level WAL, so this package fsyncs only when it rolls a
// segment and on Sync/Close; everything in between may be lost or torn by a
// crash, and Open repairs that.
//
// # Directory layout
//
// Every segment is three files named by the segment's base offset (the offset
// of its first batch) as a zero-padded 20-digit decimal number:
//
//	00000000000000000000.log        batches, back to back
//	00000000000000000000.index      sparse offset index
//	00000000000000000000.timeindex  time index
//
// Offsets are contiguous: a segment's base offset equals the end offset (last
// offset + 1) of the previous one. The segment with the highest base offset
// is the active one; only it is appended to. The log start offset is the
// base offset of the first segment and the log end offset is the end offset
// of the active segment. When retention removes every batch, the active
// segment is an empty .log named by the log end offset, which is how an
// empty log remembers its offsets across restarts.
//
// DeleteBefore (Kafka DeleteRecords) can move the log start above the first
// segment's base, into a segment or even into a batch. That start is kept in
//
//	log-start-offset                decimal offset and a newline
//
// replaced atomically (write a temporary file, fsync, rename, fsync the
// directory) before any segment is deleted. Open takes the larger of it and
// the first segment's base (but never more than the end offset), and
// deletes segments that end at or below it. Retention never moves the start
// backwards, so a stale checkpoint below the first segment is harmless.
//
// A segment that retention or DeleteBefore drops is retired: its indexes
// are deleted and its .log renamed to
//
//	00000000000000000000.log.deleted
//
// (no segment name, so Open never reads it), the directory is fsynced, and
// only then is the file shrunk a step at a time and unlinked (package
// reclaim: a large file unlinked at once stalls the WAL's fsyncs). Open
// removes any a crash left.
//
// # .log
//
// Kafka v2 RecordBatches (see package recbatch), concatenated.
//
// # .index
//
// 8-byte big-endian entries:
//
//	uint32 relative offset   batch baseOffset - segment base offset
//	uint32 position          byte position of that batch in the .log
//
// An entry is added for a batch when at least IndexIntervalBytes have been
// appended since the previous entry, so entries are strictly increasing in
// both fields. A lookup takes the last entry at or below the wanted offset
// and scans batch headers forward from its position (or from position 0 when
// there is no such entry). Unlike Kafka, which indexes a batch's last offset,
// the entry holds the batch's base offset, which makes the entry itself the
// start of a batch that is at or before the wanted offset.
//
// # .timeindex
//
// 12-byte big-endian entries:
//
//	int64  timestamp         largest batch MaxTimestamp in the segment so far
//	uint32 relative offset   baseOffset of the batch that reached it, relative
//
// An entry is considered whenever an offset index entry is added, and once
// more when the segment is rolled; it is written only if the largest
// timestamp grew since the last entry. Timestamps and offsets are therefore
// strictly increasing, and the last entry of a rolled segment holds the
// segment's largest timestamp (used by time-based retention). Every batch
// before the interval point that added an entry has MaxTimestamp <= the
// entry's timestamp, so a search for the first record at or after time T can
// start at the batch of the last entry whose timestamp is below T.
//
// # Recovery
//
// Rolling writes the old segment's final time index entry, flushes its index
// files and fsyncs all three before creating the next segment, so only the
// active (last) segment can be torn. Open therefore:
//
//   - for every older segment, loads its index files if they are sane (whole
//     entries, strictly increasing, the last position inside the .log, the
//     batch at that position matching, and the batches after it reaching the
//     end of the file exactly); otherwise it rebuilds both indexes by scanning
//     batch headers. An older segment that does not parse is corruption and
//     makes Open fail, as does a gap or overlap between segments: silently
//     dropping committed data would be worse than refusing to start;
//   - for the active segment, always scans every batch with CRC validation,
//     truncates the file at the first torn, corrupt or out-of-sequence batch,
//     and rebuilds both indexes from the scan.
package segment
