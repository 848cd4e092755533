package objstores3

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/streamline-dev/streamline/shared/objstore"
)

func init() { objstore.Register("s3", openURL) }

// Defaults for Options fields left zero.
const (
	DefaultMaxAttempts        = 5
	DefaultMaxBackoff         = 5 * time.Second
	DefaultAttemptTimeout     = 30 * time.Second
	DefaultMultipartThreshold = 16 << 20
	DefaultPartSize           = 8 << 20
	DefaultPartConcurrency    = 4
	DefaultListPageSize       = 1000

	// MinPartSize is S3's smallest part (all but the last).
	MinPartSize = 5 << 20
	// maxParts is S3's limit of parts per upload.
	maxParts = 10000
)

// Options configure a Bucket. Only Bucket is required.
type Options struct {
	Bucket string // must exist: see CreateBucket
	// Prefix, if set, is prepended (with a '/') to every key, so several
	// clusters can share a bucket. It must be a valid key.
	Prefix string

	Endpoint  string // e.g. http://127.0.0.1:7070; empty: AWS's own
	Region    string // empty: from the environment, else us-east-1
	PathStyle bool   // bucket in the path, not the host name (most non-AWS servers)

	// Static credentials. Both empty: the SDK's default chain
	// (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and shared files,
	// web identity, container and instance roles).
	AccessKeyID, SecretAccessKey string

	// MaxAttempts bounds the tries of one request, the first included.
	MaxAttempts int
	// MaxBackoff caps the jittered exponential delay between tries.
	MaxBackoff time.Duration
	// AttemptTimeout bounds one try, from dialing to the last byte of the
	// response body, so a hung connection is abandoned and retried instead
	// of stalling the caller until its context expires. It must cover one
	// part (PartSize) or one whole small object at the slowest bandwidth
	// expected.
	AttemptTimeout time.Duration
	// DisableRetryRateLimit turns off the SDK's client-wide retry token
	// bucket. With it on (the default) a client whose requests mostly fail
	// stops retrying early, sparing an overloaded server; tests that inject
	// many faults on purpose turn it off.
	DisableRetryRateLimit bool

	// Objects larger than MultipartThreshold are uploaded in parts of
	// PartSize (at least MinPartSize), PartConcurrency at a time.
	MultipartThreshold int64
	PartSize           int64
	PartConcurrency    int

	// ListPageSize is the MaxKeys of each ListObjectsV2 call (S3 caps it at
	// 1000); tests lower it to exercise paging.
	ListPageSize int32
}

func (o *Options) setDefaults() {
	def := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.MultipartThreshold, DefaultMultipartThreshold)
	def(&o.PartSize, DefaultPartSize)
	if o.MaxAttempts == 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.AttemptTimeout == 0 {
		o.AttemptTimeout = DefaultAttemptTimeout
	}
	if o.PartConcurrency == 0 {
		o.PartConcurrency = DefaultPartConcurrency
	}
	if o.ListPageSize == 0 {
		o.ListPageSize = DefaultListPageSize
	}
}

// bucketName is S3's rule for bucket names, minus the corner cases (IP
// addresses, reserved prefixes) the server reports itself.
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// Validate reports the first bad field, after defaults are applied.
func (o Options) Validate() error {
	o.setDefaults()
	switch {
	case !bucketName.MatchString(o.Bucket):
		return fmt.Errorf("bucket %q: want 3-63 lowercase letters, digits, '.' or '-'", o.Bucket)
	case o.Prefix != "" && objstore.ValidKey(o.Prefix) != nil:
		return fmt.Errorf("prefix: %w", objstore.ValidKey(o.Prefix))
	case (o.AccessKeyID == "") != (o.SecretAccessKey == ""):
		return errors.New("static credentials need both the access key id and the secret")
	case o.MaxAttempts < 1:
		return fmt.Errorf("max attempts %d: want at least 1", o.MaxAttempts)
	case o.MaxBackoff < 0 || o.AttemptTimeout < 0:
		return errors.New("durations must not be negative")
	case o.PartSize < MinPartSize:
		return fmt.Errorf("part size %d: S3 wants at least %d", o.PartSize, MinPartSize)
	case o.MultipartThreshold < 1:
		return fmt.Errorf("multipart threshold %d: want at least 1", o.MultipartThreshold)
	case o.PartConcurrency < 1:
		return fmt.Errorf("part concurrency %d: want at least 1", o.PartConcurrency)
	case o.ListPageSize < 1 || o.ListPageSize > 1000:
		return fmt.Errorf("list page size %d: want 1..1000", o.ListPageSize)
	}
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("endpoint %q: want http://host:port or https://host:port", o.Endpoint)
		}
	}
	return nil
}

// ParseURL turns s3://bucket[/prefix][?params] into Options. Parameters, all
// optional:
//
//	endpoint=http://127.0.0.1:7070   server URL (default: AWS)
//	region=us-east-1                 (default: environment, else us-east-1)
//	path_style=true                  path-style addressing
//	max_attempts=5                   tries per request
//	max_backoff=5s                   cap of the delay between tries
//	attempt_timeout=30s              bound of one try
//	retry_rate_limit=false           disable the client-wide retry budget
//	multipart_threshold=16MiB        sizes: bytes, or with KiB, MiB, GiB
//	part_size=8MiB
//	part_concurrency=4
//	page_size=1000                   keys per ListObjectsV2 page
//
// Errors name the offending part. Credentials never come from the URL.
func ParseURL(u *url.URL) (Options, error) {
	var o Options
	bad := func(part string, err error) (Options, error) {
		return Options{}, fmt.Errorf("objstores3: URL %q: %s: %v", u.Redacted(), part, err)
	}
	if u.Scheme != "s3" {
		return bad("scheme", fmt.Errorf("%q, want s3", u.Scheme))
	}
	if u.User != nil {
		return bad("user info", errors.New("credentials are not accepted in the URL"))
	}
	o.Bucket = u.Host
	if !bucketName.MatchString(o.Bucket) {
		return bad("bucket (host)", fmt.Errorf("%q: want 3-63 lowercase letters, digits, '.' or '-'", o.Bucket))
	}
	if o.Prefix = strings.Trim(u.Path, "/"); o.Prefix != "" {
		if err := objstore.ValidKey(o.Prefix); err != nil {
			return bad("path (key prefix)", err)
		}
	}
	q := u.Query()
	for _, name := range slices.Sorted(maps.Keys(q)) { // report the same bad one every time
		v := q.Get(name)
		var err error
		switch name {
		case "endpoint":
			o.Endpoint = v
		case "region":
			o.Region = v
		case "path_style":
			o.PathStyle, err = strconv.ParseBool(v)
		case "max_attempts":
			o.MaxAttempts, err = strconv.Atoi(v)
		case "max_backoff":
			o.MaxBackoff, err = time.ParseDuration(v)
		case "attempt_timeout":
			o.AttemptTimeout, err = time.ParseDuration(v)
		case "retry_rate_limit":
			var on bool
			on, err = strconv.ParseBool(v)
			o.DisableRetryRateLimit = !on
		case "multipart_threshold":
			o.MultipartThreshold, err = parseSize(v)
		case "part_size":
			o.PartSize, err = parseSize(v)
		case "part_concurrency":
			o.PartConcurrency, err = strconv.Atoi(v)
		case "page_size":
			var n int64
			n, err = strconv.ParseInt(v, 10, 32)
			o.ListPageSize = int32(n)
		default:
			err = errors.New("unknown parameter")
		}
		if err != nil {
			return bad(fmt.Sprintf("query parameter %q", name), err)
		}
	}
	if err := o.Validate(); err != nil {
		return bad("parameters", err)
	}
	return o, nil
}

// parseSize reads "1048576", "512KiB", "16MiB" or "1GiB".
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			s, mult = n, m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want bytes, or a number with KiB, MiB or GiB", s)
	}
	return n * mult, nil
}

func openURL(ctx context.Context, u *url.URL, cfg objstore.OpenConfig) (objstore.Bucket, error) {
	o, err := ParseURL(u)
	if err != nil {
		return nil, err
	}
	o.AccessKeyID, o.SecretAccessKey = cfg.AccessKeyID, cfg.SecretAccessKey
	return New(ctx, o)
}
