// Package objectfmt encodes and decodes Streamline's data objects: what one
// log-service node flushes to object storage per flush window, holding the
// record batches of many partitions.
//
// Layout (all integers big-endian):
//
//	header   8 bytes   magic "SLOBJv1\n"
//	sections           for each partition, its record batches back to back,
//	                   byte for byte as producers sent them (baseOffset and
//	                   partitionLeaderEpoch patched, which the CRC does not
//	                   cover); a partition's bytes are contiguous, so a
//	                   fetch reads them with one range GET
//	index              uint32 entry count, then per entry (60 bytes):
//	                     topic id        16 bytes
//	                     partition       int32
//	                     position        uint64  byte offset of the section
//	                     length          uint64  section length
//	                     base offset     int64   first offset in the section
//	                     last offset     int64   last offset in the section
//	                     max timestamp   int64
//	footer  24 bytes   index position uint64 | index length uint32 |
//	                   CRC-32C (Castagnoli) of the index uint32 |
//	                   magic "SLOBJEND"
//
// The footer lets a reader (garbage collection, compaction, debugging)
// find the index with one small range GET of the object's tail. Readers of
// data never need it: etcd holds each section's coordinates. Objects are
// immutable and uniquely named (NewKey), so no conditional PUT is needed.
//
// Keys are "<4 hex>/<node>/<unix millis %013d>-<flush seq %020d>-<12 hex>.slo":
// random hex first to spread S3 request load over key prefixes, then the
// writing node, the creation time (KeyTime parses it back; garbage
// collection uses it as the object's age) and the flush sequence.
package objectfmt
