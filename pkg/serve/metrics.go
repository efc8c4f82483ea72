package serve

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics follow Triton's names where a user would look for them
// (nv_inference_*, nv_cache_*) and add optictl_* histograms and variant
// gauges. Every metric is documented in the README.
type metrics struct {
	reg         *prometheus.Registry
	success     *prometheus.CounterVec
	failure     *prometheus.CounterVec
	inferCount  *prometheus.CounterVec
	execCount   *prometheus.CounterVec
	requestUs   *prometheus.CounterVec
	queueUs     *prometheus.CounterVec
	computeUs   *prometheus.CounterVec
	cacheHits   *prometheus.CounterVec
	cacheMisses *prometheus.CounterVec
	queueHist   *prometheus.HistogramVec
	computeHist *prometheus.HistogramVec
	requestHist *prometheus.HistogramVec
	batchHist   *prometheus.HistogramVec
	activeVar   *prometheus.GaugeVec
	switches    *prometheus.CounterVec
	queueDepth  *prometheus.GaugeVec
}

func newMetrics() *metrics {
	lbl := []string{"model", "version"}
	vl := []string{"model", "version", "variant"}
	m := &metrics{reg: prometheus.NewRegistry()}
	cv := func(name, help string, labels []string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		m.reg.MustRegister(c)
		return c
	}
	hv := func(name, help string, labels []string, buckets []float64) *prometheus.HistogramVec {
		h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
		m.reg.MustRegister(h)
		return h
	}
	lat := []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
	m.success = cv("nv_inference_request_success", "Successful inference requests (Triton name).", lbl)
	m.failure = cv("nv_inference_request_failure", "Failed inference requests, by reason (Triton name).", append(lbl, "reason"))
	m.inferCount = cv("nv_inference_count", "Inferences performed, counting each batch item (Triton name).", vl)
	m.execCount = cv("nv_inference_exec_count", "Model executions; nv_inference_count / nv_inference_exec_count is the average batch size (Triton name).", vl)
	m.requestUs = cv("nv_inference_request_duration_us", "Cumulative end-to-end request time in microseconds (Triton name).", lbl)
	m.queueUs = cv("nv_inference_queue_duration_us", "Cumulative time requests waited in the queue, microseconds (Triton name).", vl)
	m.computeUs = cv("nv_inference_compute_infer_duration_us", "Cumulative model execution time, microseconds (Triton name).", vl)
	m.cacheHits = cv("nv_cache_num_hits_per_model", "Response cache hits (Triton name).", lbl)
	m.cacheMisses = cv("nv_cache_num_misses_per_model", "Response cache misses (Triton name).", lbl)
	m.queueHist = hv("optictl_queue_duration_seconds", "Time from enqueue to execution start.", vl, lat)
	m.computeHist = hv("optictl_compute_duration_seconds", "Model execution time per batch.", vl, lat)
	m.requestHist = hv("optictl_request_duration_seconds", "End-to-end request time, including cache hits.", lbl, lat)
	m.batchHist = hv("optictl_batch_size", "Requests merged per execution.", vl, []float64{1, 2, 4, 8, 16, 32, 64, 128})
	m.activeVar = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "optictl_variant_active", Help: "1 for the variant the router currently sends unpinned traffic to."}, vl)
	m.reg.MustRegister(m.activeVar)
	m.switches = cv("optictl_variant_switches_total", "Router switches between variants.", append(lbl, "from", "to"))
	m.queueDepth = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "optictl_queue_depth", Help: "Requests waiting in a variant's queue."}, vl)
	m.reg.MustRegister(m.queueDepth)
	return m
}

// modelMetrics are one served model's series, resolved once at start so
// that a request does not hash label values (WithLabelValues) on its path.
type modelMetrics struct {
	success, requestUs, cacheHits, cacheMisses prometheus.Counter
	requestHist                                prometheus.Observer
}

func (m *metrics) forModel(name, version string) modelMetrics {
	return modelMetrics{
		success:     m.success.WithLabelValues(name, version),
		requestUs:   m.requestUs.WithLabelValues(name, version),
		cacheHits:   m.cacheHits.WithLabelValues(name, version),
		cacheMisses: m.cacheMisses.WithLabelValues(name, version),
		requestHist: m.requestHist.WithLabelValues(name, version),
	}
}

// variantMetrics are one variant's series (see modelMetrics).
type variantMetrics struct {
	inferCount, execCount, queueUs, computeUs prometheus.Counter
	queueHist, computeHist, batchHist         prometheus.Observer
	queueDepth                                prometheus.Gauge
}

func (m *metrics) forVariant(model, version, variant string) variantMetrics {
	l := []string{model, version, variant}
	return variantMetrics{
		inferCount:  m.inferCount.WithLabelValues(l...),
		execCount:   m.execCount.WithLabelValues(l...),
		queueUs:     m.queueUs.WithLabelValues(l...),
		computeUs:   m.computeUs.WithLabelValues(l...),
		queueHist:   m.queueHist.WithLabelValues(l...),
		computeHist: m.computeHist.WithLabelValues(l...),
		batchHist:   m.batchHist.WithLabelValues(l...),
		queueDepth:  m.queueDepth.WithLabelValues(l...),
	}
}

// cacheRejected exports how many shared-cache entries failed their MAC.
func (m *metrics) cacheRejected(n func() int64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "optictl_cache_rejected_total",
		Help: "Shared-cache entries ignored because their HMAC did not verify (counted as misses)."}, func() float64 { return float64(n()) }))
}
