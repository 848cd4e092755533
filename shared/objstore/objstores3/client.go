package objstores3

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// newClient builds the SDK client and returns it with its transport (ours,
// so Close can drop idle connections).
//
// Retries are the SDK's standard retryer: it retries connection errors
// (refused, reset, dropped), HTTP 500/502/503/504, timeouts and throttling
// codes such as SlowDown, with jittered exponential backoff (base 1 s for
// throttles, as AWS prescribes, 50 ms otherwise, capped at MaxBackoff) and
// rewinds the request body, which is why bodies here are bytes.Readers.
// Timeouts are per attempt: an http.Client.Timeout of AttemptTimeout covers
// dial, request, headers and body, and the SDK classifies its expiry as a
// retryable send error, so a hung connection costs one attempt, not the call.
func newClient(ctx context.Context, o Options) (*s3.Client, *http.Transport, error) {
	var cfg aws.Config
	if o.AccessKeyID != "" {
		// Static credentials need nothing from the environment; not loading
		// it keeps a stray profile or AWS_CA_BUNDLE from changing behaviour.
		cfg = aws.Config{
			Region:      o.Region,
			Credentials: credentials.NewStaticCredentialsProvider(o.AccessKeyID, o.SecretAccessKey, ""),
		}
	} else {
		var opts []func(*config.LoadOptions) error
		if o.Region != "" {
			opts = append(opts, config.WithRegion(o.Region))
		}
		var err error
		if cfg, err = config.LoadDefaultConfig(ctx, opts...); err != nil {
			return nil, nil, fmt.Errorf("objstores3: loading AWS config: %w", err)
		}
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1" // most S3-compatible servers accept any; AWS redirects
	}

	// Start from the SDK's transport (with the custom CA bundle, if the
	// environment configured one) but own the http.Client, for the timeout.
	bc, ok := cfg.HTTPClient.(*awshttp.BuildableClient)
	if !ok {
		bc = awshttp.NewBuildableClient()
	}
	tr := bc.GetTransport()
	tr.MaxIdleConnsPerHost = 64 // uploads and part uploads run in parallel
	cfg.HTTPClient = &http.Client{
		Transport: tr,
		Timeout:   o.AttemptTimeout,
		// S3 answers a wrong region with a 301 the SDK must see.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	cfg.Retryer = func() aws.Retryer {
		return retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = o.MaxAttempts
			so.MaxBackoff = o.MaxBackoff
			if o.DisableRetryRateLimit {
				so.RateLimiter = ratelimit.None
			}
		})
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		so.UsePathStyle = o.PathStyle
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		// Validate response checksums only when a request asks for it
		// (whole-object GETs do, ranged GETs do not: see GetRange).
		so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		// Servers that return no checksum are normal here; don't log each.
		so.DisableLogOutputChecksumValidationSkipped = true
	})
	return client, tr, nil
}

// CreateBucket creates o.Bucket (Prefix is ignored); one that already exists
// and is ours is not an error. For tests and local setups: in production the
// bucket, its lifecycle rules (expire incomplete multipart uploads) and its
// permissions belong to the deployment, not to the service.
func CreateBucket(ctx context.Context, o Options) error {
	o.setDefaults()
	if err := o.Validate(); err != nil {
		return fmt.Errorf("objstores3: %w", err)
	}
	client, tr, err := newClient(ctx, o)
	if err != nil {
		return err
	}
	defer tr.CloseIdleConnections()
	in := &s3.CreateBucketInput{Bucket: aws.String(o.Bucket)}
	if r := client.Options().Region; r != "us-east-1" {
		// Only us-east-1 is implied; elsewhere S3 wants it spelled out.
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(r)}
	}
	_, err = client.CreateBucket(ctx, in)
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("objstores3: create bucket %q: %w", o.Bucket, err)
	}
	return nil
}
