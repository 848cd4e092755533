package svcmain

import (
	"strings"
	"testing"
)

// TestObjectStoreFlags: the tiering shorthands become an s3:// URL, and
// every inconsistent combination is a usage error naming a flag.
func TestObjectStoreFlags(t *testing.T) {
	cases := []struct {
		args    []string
		env     map[string]string
		want    string
		wantErr string
	}{
		{args: nil, want: ""},
		{args: []string{"--object-store", "file:///tmp/x"}, want: "file:///tmp/x"},
		{args: []string{"--tiering-enabled", "--tiering-bucket", "my-bucket", "--tiering-region", "us-east-1"}, want: "s3://my-bucket?region=us-east-1"},
		{args: []string{"--tiering-enabled", "--tiering-bucket", "my-bucket/streamline/prod"}, want: "s3://my-bucket/streamline/prod"},
		{env: map[string]string{"STREAMLINE_TIERING_ENABLED": "true", "STREAMLINE_TIERING_BUCKET": "env-bucket"}, want: "s3://env-bucket"},
		{args: []string{"--tiering-enabled"}, wantErr: "--tiering-enabled needs --tiering-bucket"},
		{args: []string{"--tiering-bucket", "b1b"}, wantErr: "--tiering-bucket needs --tiering-enabled"},
		{args: []string{"--tiering-region", "eu-west-1"}, wantErr: "--tiering-region needs --tiering-enabled"},
		{args: []string{"--tiering-enabled", "--tiering-bucket", "b1b", "--object-store", "file:///x"}, wantErr: "--object-store and --tiering-enabled"},
		{args: []string{"--tiering-enabled", "--tiering-bucket", "Bad_Bucket"}, wantErr: "flag --tiering-bucket"},
		{args: []string{"--tiering-enabled", "--tiering-bucket", "ab"}, wantErr: "flag --tiering-bucket"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			f := NewFlags("test", "test", false)
			resolve := f.ObjectStore("object store")
			if _, ok := f.Parse(c.args); !ok {
				t.Fatalf("%v: parse failed", c.args)
			}
			got, err := resolve()
			switch {
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Errorf("%v %v: got %q, %v; want an error with %q", c.args, c.env, got, err, c.wantErr)
			case c.wantErr == "" && (err != nil || got != c.want):
				t.Errorf("%v %v: got %q, %v; want %q", c.args, c.env, got, err, c.want)
			}
		})
	}
}
