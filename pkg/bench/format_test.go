package bench

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/optictl/optictl/pkg/numerics"
)

// jsonSchema lists the fields the JSON report promises; every pointer must
// be set after decoding.
type jsonSchema struct {
	SchemaVersion *int    `json:"schema_version"`
	Backend       *string `json:"backend"`
	Device        *string `json:"device"`
	Mode          *string `json:"mode"`
	Reference     *string `json:"reference"`
	PeakRSSBytes  *int64  `json:"peak_rss_bytes"`
	Host          *Host   `json:"host"`
	Models        []*struct {
		Model     *string         `json:"model"`
		Variant   *string         `json:"variant"`
		SizeBytes *int64          `json:"size_bytes"`
		Accuracy  *map[string]any `json:"accuracy"`
	} `json:"models"`
	Results []*struct {
		Model       *string `json:"model"`
		Variant     *string `json:"variant"`
		Batch       *int    `json:"batch"`
		Concurrency *int    `json:"concurrency"`
		LatencyMS   *struct {
			Min    *float64 `json:"min"`
			Mean   *float64 `json:"mean"`
			P50    *float64 `json:"p50"`
			P90    *float64 `json:"p90"`
			P95    *float64 `json:"p95"`
			P99    *float64 `json:"p99"`
			P999   *float64 `json:"p999"`
			Max    *float64 `json:"max"`
			Stddev *float64 `json:"stddev"`
		} `json:"latency_ms"`
		P50CI              *CI             `json:"p50_ci_ms"`
		CV                 *float64        `json:"cv"`
		ThroughputPerS     *float64        `json:"throughput_per_s"`
		SamplesPerS        *float64        `json:"samples_per_s"`
		Speedup            *float64        `json:"speedup"`
		SpeedupSignificant *bool           `json:"speedup_significant"`
		SizeBytes          *int64          `json:"size_bytes"`
		PeakRSSBytes       *int64          `json:"peak_rss_bytes"`
		Accuracy           *map[string]any `json:"accuracy"`
	} `json:"results"`
}

// missing lists the nil pointers under v (the unset required fields).
func missing(v reflect.Value, path string) []string {
	var out []string
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return []string{path}
		}
		return missing(v.Elem(), path)
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			out = append(out, missing(v.Field(i), path+"."+strings.Split(f.Tag.Get("json"), ",")[0])...)
		}
	case reflect.Slice:
		if v.Len() == 0 {
			return []string{path + "[]"}
		}
		for i := range v.Len() {
			out = append(out, missing(v.Index(i), path+"["+strconv.Itoa(i)+"]")...)
		}
	}
	return out
}

func sampleReport(t *testing.T) *Report {
	t.Helper()
	cfg := baseConfig("ref.onnx", "fast.onnx")
	cfg.Open = fakeOpener(map[string]fakeSession{
		"ref.onnx":  {fixed: -1, sleep: 3 * time.Millisecond},
		"fast.onnx": {fixed: -1, bias: 0.25},
	}, nil, nil)
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep.Gates = Gates{MaxP99: time.Hour}.Check(rep)
	return rep
}

func TestJSONSchema(t *testing.T) {
	rep := sampleReport(t)
	var b bytes.Buffer
	if err := WriteJSON(&b, rep); err != nil {
		t.Fatal(err)
	}
	var s jsonSchema
	dec := json.NewDecoder(bytes.NewReader(b.Bytes()))
	if err := dec.Decode(&s); err != nil {
		t.Fatal(err)
	}
	if m := missing(reflect.ValueOf(s), ""); len(m) > 0 {
		t.Fatalf("required fields missing from the JSON report: %v\n%s", m, b.String())
	}
	if *s.SchemaVersion != SchemaVersion || len(s.Results) != 2 || *s.Results[1].Variant != "fast.onnx" {
		t.Fatalf("decoded %+v", s)
	}
	r := s.Results[1]
	if *r.LatencyMS.Min > *r.LatencyMS.P50 || *r.LatencyMS.P50 > *r.LatencyMS.P99 || *r.LatencyMS.P99 > *r.LatencyMS.Max {
		t.Fatal("latency fields out of order")
	}
	acc := *r.Accuracy
	for _, k := range []string{"top1_agreement", "max_abs_error", "cosine", "sqnr_db", "samples"} {
		if _, ok := acc[k]; !ok {
			t.Fatalf("accuracy lacks %s: %v", k, acc)
		}
	}
	// Not measured: an empty object, not null or absent.
	one, _ := json.Marshal(Result{})
	if !strings.Contains(string(one), `"accuracy":{}`) {
		t.Fatalf("unmeasured accuracy encodes as %s", one)
	}
	var raw map[string]any
	json.Unmarshal(b.Bytes(), &raw)
	if g, ok := raw["gates"].([]any); !ok || len(g) != 1 {
		t.Fatalf("gates in JSON: %v", raw["gates"])
	}
}

func TestTableMarkdownCSV(t *testing.T) {
	rep := sampleReport(t)
	var tb bytes.Buffer
	if err := WriteTable(&tb, rep); err != nil {
		t.Fatal(err)
	}
	table := tb.String()
	for _, want := range []string{"variant", "p50 ms", "p99 ms", "speedup", "top1 agree", "ref.onnx (ref)", "fast.onnx", "* best", "peak RSS"} {
		if !strings.Contains(table, want) {
			t.Fatalf("table lacks %q:\n%s", want, table)
		}
	}
	// The fast variant holds the best p50: its cell is marked.
	fast := rep.Results[1]
	if !strings.Contains(table, sig(fast.LatencyMS.P50)+"*") {
		t.Fatalf("best p50 %s not marked:\n%s", sig(fast.LatencyMS.P50), table)
	}
	if strings.Contains(table, sig(rep.Results[0].LatencyMS.P50)+"*") {
		t.Fatalf("the slower p50 is marked:\n%s", table)
	}

	var md bytes.Buffer
	if err := WriteMarkdown(&md, rep); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(md.String()), "\n")
	if !strings.HasPrefix(lines[0], "| variant | batch | conc |") || !strings.HasPrefix(lines[1], "| --- |") || len(lines) < 4 {
		t.Fatalf("markdown:\n%s", md.String())
	}
	if !strings.Contains(lines[3], "**"+sig(fast.LatencyMS.P50)+"**") {
		t.Fatalf("best p50 not bold: %s", lines[3])
	}

	var cb bytes.Buffer
	if err := WriteCSV(&cb, rep); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&cb).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || !reflect.DeepEqual(recs[0], CSVHeader) {
		t.Fatalf("csv: %v", recs)
	}
	col := map[string]int{}
	for i, h := range CSVHeader {
		col[h] = i
	}
	p50, err := strconv.ParseFloat(recs[2][col["p50_ms"]], 64)
	if err != nil || p50 != fast.LatencyMS.P50 {
		t.Fatalf("csv p50 %q, want %v", recs[2][col["p50_ms"]], fast.LatencyMS.P50)
	}
	if recs[1][col["sqnr_db"]] != "" || recs[2][col["sqnr_db"]] == "" {
		t.Fatalf("sqnr cells: ref %q variant %q", recs[1][col["sqnr_db"]], recs[2][col["sqnr_db"]])
	}
}

func TestPareto(t *testing.T) {
	pts := []Point{
		{"a", 10, 0.99}, {"b", 5, 0.97}, {"c", 7, 0.96}, {"d", 2, 0.90}, {"e", 12, 0.99}, {"f", 2, 0.85},
	}
	var got []string
	for _, p := range Pareto(pts) {
		got = append(got, p.Label)
	}
	// c is beaten by b (faster and more accurate), e by a, f by d.
	if strings.Join(got, "") != "dba" {
		t.Fatalf("frontier %v, want d b a", got)
	}
}

func TestWritePlot(t *testing.T) {
	rep := sampleReport(t)
	var b bytes.Buffer
	if err := WritePlot(&b, rep); err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	for _, want := range []string{"<svg", "ref.onnx", "fast.onnx", "Pareto frontier", "p50 latency (ms)", "top-1 agreement"} {
		if !strings.Contains(svg, want) {
			t.Fatalf("svg lacks %q", want)
		}
	}
	rep.Results[1].Accuracy = numerics.Accuracy{}
	if err := WritePlot(&b, rep); err == nil {
		t.Fatal("a plot without accuracy for every result should fail")
	}
}
