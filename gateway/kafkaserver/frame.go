package kafkaserver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DefaultMaxRequestBytes is Kafka's socket.request.max.bytes default.
const DefaultMaxRequestBytes = 100 << 20

// apiVersionsKey is special in three ways (KIP-511): an unsupported version
// is answered instead of dropping the connection, its body is not parsed
// then, and its response header is always v0.
const apiVersionsKey = 18

// Decoding errors. Every one of them makes the server close the connection,
// as Kafka does: after a bad frame the byte stream cannot be trusted.
var (
	ErrFrameSize          = errors.New("kafka: frame size out of range")
	ErrMalformed          = errors.New("kafka: malformed request")
	ErrUnknownKey         = errors.New("kafka: unknown api key")
	ErrUnsupportedVersion = errors.New("kafka: unsupported api version")
)

// Request is one decoded Kafka request.
type Request struct {
	Key           int16
	Version       int16
	CorrelationID int32
	ClientID      *string
	// RemoteAddr is the client's address (set by the server, not decoded).
	RemoteAddr string
	// Body is the decoded request at Version. For an ApiVersions request
	// whose version is not served, Body only has its version set: a body of
	// an unknown version cannot be parsed, and KIP-511 answers it anyway.
	Body kmsg.Request
}

// VersionsFunc reports the version range served for key; ok is false for
// keys that are not served at all.
type VersionsFunc func(key int16) (min, max int16, ok bool)

// initialFrameAlloc caps the buffer allocated before a frame's bytes have
// arrived, so a peer announcing a huge frame and sending nothing cannot make
// us commit maxBytes of memory up front.
const initialFrameAlloc = 1 << 20

// ReadRequest reads one size-prefixed frame from r and decodes it. A frame
// size that is negative or above maxBytes fails before the body is read.
func ReadRequest(r io.Reader, maxBytes int32, versions VersionsFunc) (*Request, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(size[:]))
	if n < 0 || n > maxBytes {
		return nil, fmt.Errorf("%w: %d bytes (max %d)", ErrFrameSize, n, maxBytes)
	}
	// The first initialFrameAlloc bytes go into a buffer of that size;
	// only once they have arrived is the whole frame allocated, at its
	// exact size (growing a buffer by doubling costs copies and clearing
	// of every large produce request).
	frame := make([]byte, min(n, initialFrameAlloc))
	if _, err := io.ReadFull(r, frame); err != nil {
		return nil, unexpectedEOF(err)
	}
	if int(n) > len(frame) {
		whole := make([]byte, n)
		copy(whole, frame)
		if _, err := io.ReadFull(r, whole[len(frame):]); err != nil {
			return nil, unexpectedEOF(err)
		}
		frame = whole
	}
	return ParseRequest(frame, versions)
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// ParseRequest decodes a frame without its size prefix: the request header
// (v1, or v2 with tagged fields when the API version is flexible) and the
// body. The body is decoded only for versions that versions reports served.
func ParseRequest(frame []byte, versions VersionsFunc) (req *Request, err error) {
	// kmsg decoders bounds-check their input, but this runs on bytes from
	// the network: a decoder bug must cost one connection, not the process.
	defer func() {
		if r := recover(); r != nil {
			req, err = nil, fmt.Errorf("%w: decoder panic: %v", ErrMalformed, r)
		}
	}()
	if len(frame) < 10 { // key, version, correlation id, client id length
		return nil, fmt.Errorf("%w: %d-byte header", ErrMalformed, len(frame))
	}
	key := int16(binary.BigEndian.Uint16(frame[0:]))
	version := int16(binary.BigEndian.Uint16(frame[2:]))
	corr := int32(binary.BigEndian.Uint32(frame[4:]))
	clientID, rest, err := readNullableString(frame[8:])
	if err != nil {
		return nil, err
	}
	body := kmsg.RequestForKey(key)
	if body == nil {
		return nil, fmt.Errorf("%w: %d", ErrUnknownKey, key)
	}
	lo, hi, ok := versions(key)
	if !ok {
		return nil, fmt.Errorf("%w: %d (%s) is not served", ErrUnknownKey, key, kmsg.NameForKey(key))
	}
	body.SetVersion(version)
	req = &Request{Key: key, Version: version, CorrelationID: corr, ClientID: clientID, Body: body}
	if version < lo || version > hi || version > body.MaxVersion() {
		if key == apiVersionsKey {
			return req, nil
		}
		return nil, fmt.Errorf("%w: %s v%d (served v%d-v%d)", ErrUnsupportedVersion, kmsg.NameForKey(key), version, lo, hi)
	}
	if body.IsFlexible() {
		if rest, err = skipTags(rest); err != nil {
			return nil, err
		}
	}
	if err := body.ReadFrom(rest); err != nil {
		return nil, fmt.Errorf("%w: %s v%d body: %v", ErrMalformed, kmsg.NameForKey(key), version, err)
	}
	return req, nil
}

func readNullableString(b []byte) (*string, []byte, error) {
	if len(b) < 2 {
		return nil, nil, fmt.Errorf("%w: truncated client id", ErrMalformed)
	}
	n := int16(binary.BigEndian.Uint16(b))
	b = b[2:]
	if n < 0 {
		return nil, b, nil
	}
	if int(n) > len(b) {
		return nil, nil, fmt.Errorf("%w: client id of %d bytes overruns the frame", ErrMalformed, n)
	}
	s := string(b[:n])
	return &s, b[n:], nil
}

// skipTags skips a tagged-fields section (KIP-482): a count, then per field
// a tag and a size, all unsigned varints, and the field's bytes.
func skipTags(b []byte) ([]byte, error) {
	count, n := binary.Uvarint(b)
	if n <= 0 {
		return nil, fmt.Errorf("%w: bad tagged field count", ErrMalformed)
	}
	b = b[n:]
	for ; count > 0; count-- {
		if _, n = binary.Uvarint(b); n <= 0 {
			return nil, fmt.Errorf("%w: bad tag", ErrMalformed)
		}
		b = b[n:]
		size, n := binary.Uvarint(b)
		if n <= 0 || size > uint64(len(b)-n) {
			return nil, fmt.Errorf("%w: bad tagged field size", ErrMalformed)
		}
		b = b[n+int(size):]
	}
	return b, nil
}

// AppendResponse appends resp as a size-prefixed frame: response header v0
// (correlation id), or v1 (plus empty tagged fields) for flexible versions,
// except that ApiVersions responses always use header v0 so that a client
// can read them before it knows which versions the broker speaks.
func AppendResponse(dst []byte, corr int32, resp kmsg.Response) []byte {
	if need := len(dst) + responseHeaderMax + responseSizeHint(resp); cap(dst) < need {
		dst = append(make([]byte, 0, need), dst...)
	}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(corr))
	if resp.IsFlexible() && resp.Key() != apiVersionsKey {
		dst = append(dst, 0)
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// responseHeaderMax is the size prefix, correlation id and header tags.
const responseHeaderMax = 9

// responseSizeHint is a close upper estimate of resp's encoded size for the
// responses that carry record data (Fetch), 0 for the others. A fetch
// response is megabytes of record batches: grown by append from a small
// buffer, every byte would be copied about twice more (6% of a saturated
// all-in-one's CPU in growslice and memmove under FetchResponse.AppendTo).
func responseSizeHint(resp kmsg.Response) int {
	fr, ok := resp.(*kmsg.FetchResponse)
	if !ok {
		return 0
	}
	const perTopic, perPartition, perAborted = 64, 96, 16 // fixed fields, tags, length prefixes
	n := 64
	for i := range fr.Topics {
		t := &fr.Topics[i]
		n += perTopic + len(t.Topic)
		for j := range t.Partitions {
			p := &t.Partitions[j]
			n += perPartition + len(p.RecordBatches) + perAborted*len(p.AbortedTransactions)
		}
	}
	return n
}
