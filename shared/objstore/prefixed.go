package objstore

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// Prefixed returns a Bucket that keeps every key of b under prefix + "/":
// one bucket can then hold several clusters or tenants, and a test can give
// each case its own namespace. The prefix must be a valid key (ValidKey).
// Closing the result closes b.
func Prefixed(b Bucket, prefix string) (Bucket, error) {
	if err := ValidKey(prefix); err != nil {
		return nil, fmt.Errorf("objstore: prefix: %w", err)
	}
	return &prefixed{b: b, p: prefix + "/"}, nil
}

type prefixed struct {
	b Bucket
	p string // ends in '/'
}

// Keys are validated here, before the prefix is added, because a key such
// as "" or "/x" would otherwise become valid once prefixed.
func (p *prefixed) full(key string) (string, error) {
	if err := ValidKey(key); err != nil {
		return "", err
	}
	return p.p + key, nil
}

func (p *prefixed) Put(ctx context.Context, key string, data []byte) error {
	k, err := p.full(key)
	if err != nil {
		return err
	}
	return p.b.Put(ctx, k, data)
}

func (p *prefixed) PutReader(ctx context.Context, key string, r io.Reader, size int64) error {
	k, err := p.full(key)
	if err != nil {
		return err
	}
	return p.b.PutReader(ctx, k, r, size)
}

func (p *prefixed) Get(ctx context.Context, key string) ([]byte, error) {
	k, err := p.full(key)
	if err != nil {
		return nil, err
	}
	return p.b.Get(ctx, k)
}

func (p *prefixed) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	k, err := p.full(key)
	if err != nil {
		return nil, err
	}
	return p.b.GetRange(ctx, k, off, length)
}

func (p *prefixed) Size(ctx context.Context, key string) (int64, error) {
	k, err := p.full(key)
	if err != nil {
		return 0, err
	}
	return p.b.Size(ctx, k)
}

func (p *prefixed) Delete(ctx context.Context, key string) error {
	k, err := p.full(key)
	if err != nil {
		return err
	}
	return p.b.Delete(ctx, k)
}

func (p *prefixed) Iter(ctx context.Context, prefix string, fn func(string) error) error {
	if err := ValidPrefix(prefix); err != nil {
		return err
	}
	return p.b.Iter(ctx, p.p+prefix, func(key string) error {
		return fn(strings.TrimPrefix(key, p.p))
	})
}

func (p *prefixed) Close() error { return p.b.Close() }

// SpreadsKeys implements KeySpreading for the wrapped bucket.
func (p *prefixed) SpreadsKeys() bool { return SpreadsKeys(p.b) }
