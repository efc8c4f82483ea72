package bench

import "github.com/optictl/optictl/pkg/numerics"

// SchemaVersion is the version of the JSON report; it changes when a field
// changes meaning or disappears (adding fields does not change it).
const SchemaVersion = 1

// Report is everything one bench run measured; it is what --json writes.
type Report struct {
	SchemaVersion int `json:"schema_version"`
	// Skipped lists the model@target rows of a sweep whose backend cannot
	// run that model, with the reason.
	Skipped    []string `json:"skipped,omitempty"`
	Backend    string   `json:"backend"`
	Device     string   `json:"device"`
	Threads    int      `json:"threads"`
	Mode       string   `json:"mode"`
	Arrival    string   `json:"arrival,omitempty"`
	Rate       float64  `json:"rate,omitempty"`
	Iterations int      `json:"iterations,omitempty"`
	DurationS  float64  `json:"duration_s,omitempty"`
	Warmup     int      `json:"warmup"`
	Rounds     int      `json:"rounds"`
	Seed       int64    `json:"seed"`
	Data       string   `json:"data,omitempty"`
	Labels     string   `json:"labels,omitempty"`
	Host       Host     `json:"host"`
	IOBinding  bool     `json:"io_binding,omitempty"` // timed runs reused bound inputs/outputs (RunBound)
	// PeakRSSBytes is the bench process's peak resident set (VmHWM) at the
	// end: one process holds every model's sessions, so it covers them all.
	PeakRSSBytes int64        `json:"peak_rss_bytes"`
	Reference    string       `json:"reference"`
	Models       []ModelInfo  `json:"models"`
	Results      []Result     `json:"results"`
	Gates        []GateResult `json:"gates,omitempty"`
}

// Host describes the machine.
type Host struct {
	OS   string `json:"os"`
	Arch string `json:"arch"`
	CPUs int    `json:"cpus"`
	Go   string `json:"go"`
}

// ModelInfo describes one benchmarked model.
type ModelInfo struct {
	Model   string `json:"model"`
	Variant string `json:"variant"`
	// Backend is set in a backend sweep (Config.Backends).
	Backend   string `json:"backend,omitempty"`
	Reference bool   `json:"reference"`
	SizeBytes int64  `json:"size_bytes"`
	// SessionRSSBytes is how much the process's resident set grew while
	// this model's first session was opened and warmed up (approximate:
	// the Go heap and the allocator do not return memory at once).
	SessionRSSBytes int64             `json:"session_rss_bytes"`
	Device          string            `json:"device"`
	Accuracy        numerics.Accuracy `json:"accuracy"`
	AccuracyError   string            `json:"accuracy_error,omitempty"`
}

// Result is one model at one batch/concurrency point.
type Result struct {
	Model   string `json:"model"`
	Variant string `json:"variant"`
	// Backend and Device are set in a sweep (Config.Backends/Devices).
	Backend     string `json:"backend,omitempty"`
	DeviceName  string `json:"device,omitempty"`
	Reference   bool   `json:"reference"`
	Batch       int    `json:"batch"`
	Concurrency int    `json:"concurrency"`
	Mode        string `json:"mode"`
	// Count is the number of timed inferences (warm-up excluded).
	Count     int     `json:"count"`
	LatencyMS Summary `json:"latency_ms"`
	// P50CIms is the bootstrap confidence interval of the p50.
	P50CIms CI `json:"p50_ci_ms"`
	// CV is the latencies' coefficient of variation (stddev / mean).
	CV             float64 `json:"cv"`
	ThroughputPerS float64 `json:"throughput_per_s"`
	SamplesPerS    float64 `json:"samples_per_s"`
	// Speedup is the reference's p50 over this p50 at the same point.
	Speedup float64 `json:"speedup"`
	// SpeedupSignificant is false when the p50 confidence intervals of
	// this model and the reference overlap.
	SpeedupSignificant bool              `json:"speedup_significant"`
	SizeBytes          int64             `json:"size_bytes"`
	PeakRSSBytes       int64             `json:"peak_rss_bytes"`
	Accuracy           numerics.Accuracy `json:"accuracy"`
	// Device is the simulated device's own timing (the fpga backend):
	// LatencyMS and throughput above are the host's wall time running
	// the simulation, this is what the hardware would take.
	Device *DeviceTiming `json:"device_timing,omitempty"`
}

// DeviceTiming is a simulated device's time per inference.
type DeviceTiming struct {
	Simulated      bool    `json:"simulated"`
	LatencyMS      float64 `json:"latency_ms"`
	IntervalMS     float64 `json:"interval_ms"`
	ThroughputPerS float64 `json:"throughput_per_s"`
	Note           string  `json:"note"`
}

// GateResult is the outcome of one CI gate for one result.
type GateResult struct {
	Gate        string  `json:"gate"`
	Variant     string  `json:"variant"`
	Batch       int     `json:"batch"`
	Concurrency int     `json:"concurrency"`
	Measured    float64 `json:"measured"`
	Limit       float64 `json:"limit"`
	Unit        string  `json:"unit"`
	Passed      bool    `json:"passed"`
	Note        string  `json:"note,omitempty"`
}
