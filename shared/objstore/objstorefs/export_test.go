package objstorefs

// SetDirectIO switches a bucket's writes between O_DIRECT and the page
// cache, for tests of both paths on one file system.
func SetDirectIO(b *Bucket, on bool) { b.direct.Store(on) }
