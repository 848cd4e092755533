package bench

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeResult is a result with samples 1..n ms (and end-to-end ones twice
// that unless produceOnly).
func fakeResult(n int, produceOnly bool) Result {
	var lat, e2e []time.Duration
	for i := 1; i <= n; i++ {
		lat = append(lat, time.Duration(i)*time.Millisecond)
		if !produceOnly {
			e2e = append(e2e, time.Duration(2*i)*time.Millisecond)
		}
	}
	r := Result{Records: n, Bytes: int64(n) * 1024, Elapsed: time.Second}
	r.ProduceP50, r.ProduceP99, r.ProduceP999, r.ProduceCDF = distribution(lat)
	r.E2EP50, r.E2EP99, r.E2EP999, r.E2ECDF = distribution(e2e)
	return r
}

func TestDistributionCDF(t *testing.T) {
	r := fakeResult(1000, false)
	if len(r.ProduceCDF) != CDFSteps+1 || len(r.E2ECDF) != CDFSteps+1 {
		t.Fatalf("CDF lengths %d, %d", len(r.ProduceCDF), len(r.E2ECDF))
	}
	if r.ProduceCDF[0] != time.Millisecond || r.ProduceCDF[CDFSteps] != 1000*time.Millisecond || r.ProduceCDF[CDFSteps/2] != r.ProduceP50 {
		t.Fatalf("produce CDF min %v median %v max %v (p50 %v)", r.ProduceCDF[0], r.ProduceCDF[CDFSteps/2], r.ProduceCDF[CDFSteps], r.ProduceP50)
	}
	for i := 1; i < len(r.ProduceCDF); i++ {
		if r.ProduceCDF[i] < r.ProduceCDF[i-1] {
			t.Fatalf("CDF decreases at %d", i)
		}
	}
	if p := fakeResult(10, true); p.E2ECDF != nil || len(p.ProduceCDF) != CDFSteps+1 {
		t.Fatalf("produce-only: e2e CDF %v, produce CDF %d points", p.E2ECDF, len(p.ProduceCDF))
	}
}

func TestSlug(t *testing.T) {
	for in, want := range map[string]string{
		"local": "local",
		"diskless, S3 Standard model, 100 ms batches": "diskless-s3-standard-model-100-ms-batches",
		"  (kfake) ": "kfake",
		"local, 3 nodes, RF=3 (acks=all), 10k rec/s": "local-3-nodes-rf-3-acks-all-10k-rec-s",
		"":                        "result",
		strings.Repeat("ab ", 40): strings.TrimRight(strings.Repeat("ab-", 20), "-"),
	} {
		if got := Slug(in); got != want {
			t.Errorf("Slug(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestWriteResultAndPlot: two runs make a table with the machine line,
// the header and two rows, two json files that read back, and a plot.
func TestWriteResultAndPlot(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "results", "latest") // created by WriteResult
	runs := []struct {
		label string
		r     Result
	}{{"local", fakeResult(1000, false)}, {"diskless, produce only, a label long enough to be shortened in the legend", fakeResult(500, true)}}
	for _, run := range runs {
		if err := WriteResult(dir, run.label, run.r); err != nil {
			t.Fatal(err)
		}
	}
	md, err := os.ReadFile(filepath.Join(dir, ResultsTable))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(md), "\n"), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "Measured ") || !strings.Contains(lines[0], "cores") || !strings.Contains(lines[0], "disk: 4 KiB append + fsync p50 ") || lines[1] != "" ||
		lines[2]+"\n"+lines[3] != RowHeader || !strings.HasPrefix(lines[4], "| local |") || !strings.HasPrefix(lines[5], "| diskless, produce only,") {
		t.Fatalf("results.md:\n%s", md)
	}
	var row strings.Builder
	runs[0].r.Row(&row, runs[0].label)
	if lines[4]+"\n" != row.String() {
		t.Fatalf("row %q, want %q", lines[4], row.String())
	}
	// A produce-only run has no end-to-end latency: its cell says so
	// instead of showing 0.0 ms.
	if !strings.HasSuffix(lines[4], " ms |") || !strings.HasSuffix(lines[5], " | - |") {
		t.Fatalf("end-to-end cells: %q, %q", lines[4], lines[5])
	}

	names, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(names) != 2 || filepath.Base(names[0]) != "01-local.json" || !strings.HasPrefix(filepath.Base(names[1]), "02-diskless-produce-only-") {
		t.Fatalf("json files %v", names)
	}
	got, err := ReadResults(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Label != runs[0].label || got[1].Label != runs[1].label {
		t.Fatalf("read back %d results: %+v", len(got), got)
	}
	for i, f := range got {
		r := runs[i].r
		if len(f.ProduceCDF) != len(r.ProduceCDF) || len(f.E2ECDF) != len(r.E2ECDF) {
			t.Fatalf("%s: CDF lengths %d, %d", f.Label, len(f.ProduceCDF), len(f.E2ECDF))
		}
		for j, p := range f.ProduceCDF {
			if p[0] != CDFQuantile(j) || p[1] != ms(r.ProduceCDF[j]) {
				t.Fatalf("%s: produce CDF point %d = %v, want [%v %v]", f.Label, j, p, CDFQuantile(j), ms(r.ProduceCDF[j]))
			}
		}
		for j, p := range f.E2ECDF {
			if p[0] != CDFQuantile(j) || p[1] != ms(r.E2ECDF[j]) {
				t.Fatalf("%s: e2e CDF point %d = %v", f.Label, j, p)
			}
		}
		if f.ProduceP99 != ms(r.ProduceP99) || f.RecordsPerSec != r.RecordsPerSec() {
			t.Fatalf("%s: p99 %v rec/s %v", f.Label, f.ProduceP99, f.RecordsPerSec)
		}
	}

	if err := Plot(dir); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, CDFPlot))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() == 0 || b.Dy() == 0 {
		t.Fatalf("empty image %v", b)
	}
}

func TestPlotEmptyDir(t *testing.T) {
	dir := t.TempDir()
	if err := Plot(dir); err == nil || !strings.Contains(err.Error(), "no results") {
		t.Fatalf("Plot of an empty folder: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, CDFPlot)); err == nil {
		t.Fatal("Plot of an empty folder wrote a plot")
	}
}
