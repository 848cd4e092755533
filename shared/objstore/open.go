package objstore

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// Opener builds a Bucket from a parsed URL; each implementation package
// registers one for its scheme. It reports problems with the URL naming the
// offending part (host, path or query parameter).
type Opener func(ctx context.Context, u *url.URL, cfg OpenConfig) (Bucket, error)

// OpenConfig carries what does not belong in a URL.
type OpenConfig struct {
	// AccessKeyID and SecretAccessKey are static credentials. When both are
	// empty an implementation uses its default chain (for S3 the standard
	// AWS_* variables, shared config files, then instance roles). They are
	// never taken from the URL, which ends up in logs and flags.
	AccessKeyID, SecretAccessKey string
}

// OpenOption adjusts an OpenConfig.
type OpenOption func(*OpenConfig)

// WithStaticCredentials sets static credentials (tests, local servers).
func WithStaticCredentials(accessKeyID, secretAccessKey string) OpenOption {
	return func(c *OpenConfig) { c.AccessKeyID, c.SecretAccessKey = accessKeyID, secretAccessKey }
}

// The registry is filled by the implementation packages' init functions, the
// way database/sql drivers are: objstore itself must not import them (they
// import it for Bucket and the sentinels), and a binary that only needs the
// local directory does not link the AWS SDK.
var (
	regMu   sync.RWMutex
	openers = map[string]Opener{}
)

// Register makes an implementation available to Open under scheme. It panics
// if the scheme is taken: two packages claiming one scheme is a build error.
func Register(scheme string, open Opener) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := openers[scheme]; dup {
		panic("objstore: scheme registered twice: " + scheme)
	}
	openers[scheme] = open
}

// Open returns the Bucket a URL names. The implementation's package must be
// linked in (import it, blank if need be). Formats:
//
//	file:///abs/dir
//	    objstorefs: objects are files under /abs/dir (created if missing).
//	s3://bucket[/prefix]?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true
//	    objstores3: see objstores3.ParseURL for every query parameter.
//
// Credentials never go in the URL: see OpenConfig.
func Open(ctx context.Context, rawURL string, opts ...OpenOption) (Bucket, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Parse's error quotes the input; it cannot hold credentials we
		// accept, and showing it is the most useful message.
		return nil, fmt.Errorf("objstore: bad URL: %w", err)
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("objstore: URL %q has no scheme: want %s", u.Redacted(), schemes())
	}
	if u.User != nil {
		return nil, fmt.Errorf("objstore: URL %q: credentials in the URL are not accepted; use the environment or WithStaticCredentials", u.Redacted())
	}
	regMu.RLock()
	open := openers[u.Scheme]
	regMu.RUnlock()
	if open == nil {
		return nil, fmt.Errorf("objstore: URL %q: unknown scheme %q: want %s (is the implementation package imported?)",
			u.Redacted(), u.Scheme, schemes())
	}
	var cfg OpenConfig
	for _, o := range opts {
		o(&cfg)
	}
	return open(ctx, u, cfg)
}

func schemes() string {
	regMu.RLock()
	defer regMu.RUnlock()
	var s []string
	for k := range openers {
		s = append(s, k+"://")
	}
	if len(s) == 0 {
		return "a registered scheme (none is: import objstorefs or objstores3)"
	}
	slices.Sort(s)
	return "one of " + strings.Join(s, ", ")
}
