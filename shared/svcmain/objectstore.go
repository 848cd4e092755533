package svcmain

import (
	"flag"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// ObjectStore adds --object-store (usage describes it and its default) and
// the seed plan's shorthands for an S3 bucket, --tiering-enabled,
// --tiering-bucket and --tiering-region, which every binary with object
// storage takes alike. Call it before Parse; afterwards the returned
// function gives the object store URL to open ("" when neither is set) or
// a usage error naming the flags that conflict.
func (f *Flags) ObjectStore(usage string) func() (string, error) {
	objects := f.String("object-store", "", usage)
	enabled := f.Bool("tiering-enabled", false, "keep object storage in the S3 bucket --tiering-bucket: a shorthand for --object-store s3://BUCKET?region=REGION (credentials and endpoint from the standard AWS_* variables, e.g. AWS_ENDPOINT_URL_S3)")
	bucket := f.String("tiering-bucket", "", "with --tiering-enabled: the S3 bucket, optionally followed by a key prefix (bucket/prefix)")
	region := f.String("tiering-region", "", "with --tiering-enabled: the bucket's AWS region (default: AWS_REGION or the AWS config files)")
	return func() (string, error) {
		set := map[string]bool{}
		f.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
		return tieringURL(*objects, *enabled, *bucket, *region, set)
	}
}

// s3Bucket is S3's bucket naming rule (3-63 lowercase letters, digits,
// dots and hyphens, starting and ending with a letter or digit).
var s3Bucket = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

func tieringURL(objects string, enabled bool, bucket, region string, set map[string]bool) (string, error) {
	switch {
	case !enabled:
		for _, name := range []string{"tiering-bucket", "tiering-region"} {
			if set[name] {
				return "", fmt.Errorf("flag --%s needs --tiering-enabled", name)
			}
		}
		return objects, nil
	case set["object-store"]:
		return "", fmt.Errorf("flags --object-store and --tiering-enabled both name an object store: give one of them")
	case bucket == "":
		return "", fmt.Errorf("flag --tiering-enabled needs --tiering-bucket")
	}
	name, prefix, _ := strings.Cut(strings.Trim(bucket, "/"), "/")
	if !s3Bucket.MatchString(name) {
		return "", fmt.Errorf("invalid value %q for flag --tiering-bucket: %q is not an S3 bucket name (3-63 characters: lowercase letters, digits, '.' and '-')", bucket, name)
	}
	u := url.URL{Scheme: "s3", Host: name}
	if prefix != "" {
		u.Path = "/" + prefix
	}
	if region != "" {
		u.RawQuery = url.Values{"region": {region}}.Encode()
	}
	return u.String(), nil
}
