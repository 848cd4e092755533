// A results folder (make bench writes bench-results/latest) holds the
// results of a series of runs, one file set per run, written by
// WriteResult and plotted by Plot:
//
//	results.md       one line on the machine (date in UTC, cores, GOOS/GOARCH,
//	                 Go version), a blank line, RowHeader, then one Row per
//	                 run in the order the runs were written
//	NN-<slug>.json   one run (ResultFile): NN is its 2-digit sequence number
//	                 (01, 02, ...: the *.json files already there plus one),
//	                 <slug> its label in lower case with every run of other
//	                 characters than a-z and 0-9 turned into one '-' (at most
//	                 60 characters)
//	latency-cdf.png  written by Plot: the produce and end-to-end latency CDF
//	                 of every run, one line per run, in file name order
//
// A CDF in a json file is an array of [quantile, latency in ms] pairs,
// quantiles 0, 0.005, ..., 1 (see CDFSteps), latencies non-decreasing; it
// is empty (or absent) when the run had no samples of that latency (no
// end-to-end latency with --produce-only).

package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Names of the files of a results folder besides the per-run json files.
const (
	ResultsTable = "results.md"
	CDFPlot      = "latency-cdf.png"
)

// ResultFile is the content of a results folder's NN-<slug>.json file.
// Latencies are in milliseconds.
type ResultFile struct {
	Label         string  `json:"label"`
	Time          string  `json:"time"` // when it was written, RFC 3339 in UTC
	Records       int     `json:"records"`
	Bytes         int64   `json:"bytes"`
	ElapsedSec    float64 `json:"elapsed_s"`
	RecordsPerSec float64 `json:"records_per_s"`
	MiBPerSec     float64 `json:"mib_per_s"`
	ProduceP50    float64 `json:"produce_p50_ms"`
	ProduceP99    float64 `json:"produce_p99_ms"`
	ProduceP999   float64 `json:"produce_p999_ms"`
	E2EP50        float64 `json:"e2e_p50_ms"`
	E2EP99        float64 `json:"e2e_p99_ms"`
	E2EP999       float64 `json:"e2e_p999_ms"`
	// PeakRSSMiB and EndRSSMiB are the server process's resident set
	// size, the highest sampled during the run and the last (absent: not
	// measured, only streamline-bench --server-bin measures it).
	PeakRSSMiB float64 `json:"peak_rss_mib,omitempty"`
	EndRSSMiB  float64 `json:"end_rss_mib,omitempty"`
	// ProduceErrors is how many records failed (absent: none).
	ProduceErrors int `json:"produce_errors,omitempty"`
	// ProduceCDF and E2ECDF are [quantile, ms] pairs (see the file comment).
	ProduceCDF [][2]float64 `json:"produce_cdf"`
	E2ECDF     [][2]float64 `json:"e2e_cdf"`
}

// pairLines matches a [quantile, ms] pair as json.MarshalIndent writes it
// (over four lines).
var pairLines = regexp.MustCompile(`\[\s+([-+.eE0-9]+),\s+([-+.eE0-9]+)\s+\]`)

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mib(n int64) float64 { return math.Round(float64(n)/(1<<20)*10) / 10 }

func cdfPairs(cdf []time.Duration) [][2]float64 {
	out := make([][2]float64, 0, len(cdf))
	for i, d := range cdf {
		q := 0.0
		if len(cdf) > 1 {
			q = float64(i) / float64(len(cdf)-1)
		}
		out = append(out, [2]float64{q, ms(d)})
	}
	return out
}

// Slug is the file name part of a label: lower case, every run of
// characters other than a-z and 0-9 one '-', none at either end, at most
// 60 characters ("result" when nothing is left).
func Slug(label string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(label) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(c)
			continue
		}
		dash = true
	}
	s := b.String()
	if len(s) > 60 {
		s = strings.TrimRight(s[:60], "-")
	}
	if s == "" {
		s = "result"
	}
	return s
}

// WriteResult adds a run to the results folder dir (created if needed):
// its row to results.md (started with the machine line and RowHeader when
// new) and its NN-<slug>.json.
func WriteResult(dir, label string, r Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	jsons, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	f := ResultFile{
		Label: label, Time: now.Format(time.RFC3339), Records: r.Records, Bytes: r.Bytes, ElapsedSec: r.Elapsed.Seconds(),
		RecordsPerSec: r.RecordsPerSec(), MiBPerSec: r.MBPerSec(),
		ProduceP50: ms(r.ProduceP50), ProduceP99: ms(r.ProduceP99), ProduceP999: ms(r.ProduceP999),
		E2EP50: ms(r.E2EP50), E2EP99: ms(r.E2EP99), E2EP999: ms(r.E2EP999),
		ProduceCDF: cdfPairs(r.ProduceCDF), E2ECDF: cdfPairs(r.E2ECDF),
		PeakRSSMiB: mib(r.PeakRSS), EndRSSMiB: mib(r.EndRSS), ProduceErrors: r.ProduceErrors,
	}
	if r.Elapsed <= 0 { // no NaN or Inf: json cannot hold them
		f.RecordsPerSec, f.MiBPerSec = 0, 0
	}
	js, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	js = pairLines.ReplaceAll(js, []byte("[$1, $2]")) // a CDF point a line
	name := filepath.Join(dir, fmt.Sprintf("%02d-%s.json", len(jsons)+1, Slug(label)))
	if err := os.WriteFile(name, append(js, '\n'), 0o644); err != nil {
		return err
	}

	table := filepath.Join(dir, ResultsTable)
	var b strings.Builder
	if _, err := os.Stat(table); errors.Is(err, fs.ErrNotExist) {
		disk := "disk not probed"
		if p50, p99, err := FsyncProbe(dir, 200); err == nil {
			disk = fmt.Sprintf("disk: 4 KiB append + fsync p50 %.2f ms, p99 %.2f ms", ms(p50), ms(p99))
		}
		fmt.Fprintf(&b, "Measured %s on %d cores, %s/%s, %s; %s.\n\n%s\n",
			now.Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), disk, RowHeader)
	} else if err != nil {
		return err
	}
	r.Row(&b, label)
	t, err := os.OpenFile(table, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := t.WriteString(b.String()); err != nil {
		t.Close()
		return err
	}
	return t.Close()
}

// FsyncProbe appends n 4 KiB blocks to a scratch file in dir, fsyncing
// each, and returns the fsync latency's p50 and p99: what the WAL pays per
// group commit on this disk at the time of the runs. Local-topic latency
// follows it, and on a shared VM it drifts by several times over a day,
// so the table says what it was.
func FsyncProbe(dir string, n int) (p50, p99 time.Duration, err error) {
	f, err := os.CreateTemp(dir, ".fsync-probe-*")
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	block := make([]byte, 4096)
	lat := make([]time.Duration, 0, n)
	for range n {
		if _, err := f.Write(block); err != nil {
			return 0, 0, err
		}
		start := time.Now()
		if err := f.Sync(); err != nil {
			return 0, 0, err
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100], nil
}

// ReadResults reads the json files of a results folder in name order.
func ReadResults(dir string) ([]ResultFile, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []ResultFile
	for _, n := range names { // Glob sorts
		js, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		var f ResultFile
		if err := json.Unmarshal(js, &f); err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		out = append(out, f)
	}
	return out, nil
}

// minPlotMs is where latencies are clamped for the log-scale axis.
const minPlotMs = 0.001

// Plot renders dir/latency-cdf.png from the json files of the results
// folder dir: the produce latency CDF and the end-to-end latency CDF side
// by side, latency on a log scale (the same range in both), one line per
// run (runs without samples of a latency are left out of its panel).
func Plot(dir string) error {
	results, err := ReadResults(dir)
	if err != nil {
		return err
	}
	if len(results) == 0 {
		return fmt.Errorf("no results (*.json) in %s: write some with --results-dir first", dir)
	}
	// The x range: whole decades around every latency of both panels.
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range results {
		for _, cdf := range [][][2]float64{r.ProduceCDF, r.E2ECDF} {
			for _, p := range cdf {
				v := max(p[1], minPlotMs)
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	if math.IsInf(lo, 0) {
		return fmt.Errorf("no latency samples in the results in %s", dir)
	}
	lo = math.Pow10(int(math.Floor(math.Log10(lo))))
	hi = math.Pow10(int(math.Ceil(math.Log10(hi))))
	if hi <= lo {
		hi = lo * 10
	}

	// One legend for both panels (a run has the same line in each), right
	// of them: numbered as the json files and the rows of results.md.
	legend := plot.NewLegend()
	legend.Top, legend.Left = true, true
	legend.TextStyle.Font.Size = vg.Points(10)
	legend.ThumbnailWidth = vg.Points(30)
	legend.Padding = vg.Points(3)
	style := func(l *plotter.Line, i int) {
		l.Color = lineColor(i)
		l.Width = vg.Points(1.6)
		l.Dashes = plotutil.Dashes(i / len(lineColors))
	}
	for i, r := range results {
		l := &plotter.Line{}
		style(l, i)
		legend.Add(fmt.Sprintf("%d. %s", i+1, shorten(r.Label, 40)), l)
	}

	panel := func(title string, cdf func(ResultFile) [][2]float64) (*plot.Plot, error) {
		p := plot.New()
		p.Title.Text = title
		p.Title.TextStyle.Font.Size = vg.Points(13)
		p.X.Label.Text = "latency (ms, log scale)"
		p.Y.Label.Text = "fraction of records"
		p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
		p.X.Min, p.X.Max = lo, hi
		p.Y.Min, p.Y.Max = 0, 1
		p.Y.Tick.Marker = plot.ConstantTicks(fractionTicks())
		p.Add(plotter.NewGrid())
		n := 0
		for i, r := range results {
			pts := cdf(r)
			if len(pts) == 0 {
				continue
			}
			xys := make(plotter.XYs, len(pts))
			for j, q := range pts {
				xys[j].X, xys[j].Y = max(q[1], minPlotMs), q[0]
			}
			l, err := plotter.NewLine(xys)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", r.Label, err)
			}
			style(l, i)
			p.Add(l)
			n++
		}
		if n == 0 {
			p.Title.Text += " (no samples)"
		}
		return p, nil
	}
	prod, err := panel("produce latency (send to ack)", func(r ResultFile) [][2]float64 { return r.ProduceCDF })
	if err != nil {
		return err
	}
	e2e, err := panel("end-to-end latency (send to consumed)", func(r ResultFile) [][2]float64 { return r.E2ECDF })
	if err != nil {
		return err
	}

	// 14 x 6.5 inches at 100 dpi: 1400 x 650 pixels; the legend's column
	// as wide as its longest entry, the panels share the rest.
	img := vgimg.NewWith(vgimg.UseWH(14*vg.Inch, 6.5*vg.Inch), vgimg.UseDPI(100))
	dc := draw.New(img)
	pad := vg.Points(10)
	legendW := legend.Rectangle(dc).Size().X + 2*pad
	panels := draw.Crop(dc, 0, -legendW, 0, 0)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadTop: pad, PadBottom: pad, PadLeft: pad, PadRight: pad, PadX: 3 * pad}
	plots := [][]*plot.Plot{{prod, e2e}}
	canvases := plot.Align(plots, tiles, panels)
	for j, p := range plots[0] {
		p.Draw(canvases[0][j])
	}
	legendArea := draw.Crop(dc, dc.Size().X-legendW+pad, -pad, pad, -3*pad)
	legend.Draw(legendArea)

	out, err := os.Create(filepath.Join(dir, CDFPlot))
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(out); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// lineColors are distinct on white; past them lines repeat the colours
// with another dash pattern.
var lineColors = []color.Color{
	color.RGBA{31, 119, 180, 255},  // blue
	color.RGBA{255, 127, 14, 255},  // orange
	color.RGBA{44, 160, 44, 255},   // green
	color.RGBA{214, 39, 40, 255},   // red
	color.RGBA{148, 103, 189, 255}, // purple
	color.RGBA{140, 86, 75, 255},   // brown
	color.RGBA{227, 119, 194, 255}, // pink
	color.RGBA{127, 127, 127, 255}, // grey
	color.RGBA{188, 189, 34, 255},  // olive
	color.RGBA{23, 190, 207, 255},  // cyan
}

func lineColor(i int) color.Color { return lineColors[i%len(lineColors)] }

// fractionTicks labels the y axis every 0.1 (minor ticks every 0.05).
func fractionTicks() []plot.Tick {
	var ts []plot.Tick
	for i := 0; i <= 20; i++ {
		t := plot.Tick{Value: float64(i) / 20}
		if i%2 == 0 {
			t.Label = fmt.Sprintf("%.1f", t.Value)
		}
		ts = append(ts, t)
	}
	return ts
}

// shorten cuts a label to at most n characters, ending in "…" when cut.
func shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return strings.TrimRight(string(r[:n-1]), " ,;(") + "…"
}
