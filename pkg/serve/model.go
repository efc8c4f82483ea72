package serve

import (
	"context"
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// Errors a request can meet in the queue; the protocol layers map them to
// status codes.
var (
	ErrQueueFull    = errors.New("queue full")
	ErrNotReady     = errors.New("model not ready")
	ErrShuttingDown = errors.New("server shutting down")
)

// job is one request waiting for a batcher.
type job struct {
	ctx      context.Context
	inputs   []*runtime.Tensor // model input order
	batch    int64             // rows along dim 0 (1 when not batchable)
	enqueued time.Time
	done     chan jobResult
}

type jobResult struct {
	outs      []*runtime.Tensor
	err       error
	queue     time.Duration
	compute   time.Duration
	batchSize int
}

// variant is one model file of a served model, with its instances.
type variant struct {
	name      string
	path      string
	model     *graph.Model
	inputs    []runtime.IOInfo
	outputs   []runtime.IOInfo
	batchable bool
	queue     chan *job
	sessions  []runtime.Session
	lat       *latWindow
	srv       *Server
	parent    *servedModel
	wg        sync.WaitGroup
	depth     atomic.Int64
	m         variantMetrics
	// direct: the variant never merges requests (MaxBatch 1, or inputs
	// without a dynamic batch dim). Then a request that finds an instance
	// idle and nobody waiting runs in its own goroutine (tryDirect) instead
	// of being handed to a batcher goroutine and back, two goroutine
	// switches that buy nothing; the others queue as before, and each
	// instance's loop takes the instance (idle holds the free ones) for
	// every queued job, so that under load the instance goes from job to
	// job without waiting for a goroutine to wake. depth counts the jobs
	// waiting, in the queue or taken off it and waiting for an instance,
	// and QueueSize bounds it.
	direct bool
	idle   chan runtime.Session // direct: instances not running
}

// batchable: every input and output has a dynamic first dim.
func isBatchable(in, out []runtime.IOInfo) bool {
	if len(in) == 0 {
		return false
	}
	for _, l := range [][]runtime.IOInfo{in, out} {
		for _, io := range l {
			if len(io.Shape) == 0 || io.Shape[0] >= 0 {
				return false
			}
		}
	}
	return true
}

func (v *variant) start() {
	if v.direct {
		v.idle = make(chan runtime.Session, len(v.sessions))
		for _, s := range v.sessions {
			v.idle <- s
			v.wg.Add(1)
			go v.directLoop()
		}
		return
	}
	for _, s := range v.sessions {
		v.wg.Add(1)
		go v.loop(s)
	}
}

// loop is one instance's batcher: take a job, gather compatible jobs for
// up to MaxQueueDelay (or until MaxBatch rows), run once, split.
func (v *variant) loop(s runtime.Session) {
	defer v.wg.Done()
	cfg := v.srv.cfg
	pending := make([]*job, 0, cfg.MaxBatch)
	var carry *job
	for {
		var first *job
		if carry != nil {
			first, carry = carry, nil
		} else {
			j, ok := <-v.queue
			if !ok {
				return
			}
			v.addDepth(-1)
			first = j
		}
		pending = append(pending[:0], first)
		rows := first.batch
		if v.batchable && cfg.MaxBatch > 1 && rows < int64(cfg.MaxBatch) {
			timer := time.NewTimer(cfg.MaxQueueDelay)
		gather:
			for rows < int64(cfg.MaxBatch) {
				select {
				case j, ok := <-v.queue:
					if !ok {
						break gather
					}
					v.addDepth(-1)
					if !sameTail(first, j) || rows+j.batch > int64(cfg.MaxBatch) {
						carry = j
						break gather
					}
					pending = append(pending, j)
					rows += j.batch
					if preferred(cfg.PreferredBatch, rows) {
						break gather
					}
				case <-timer.C:
					break gather
				}
			}
			timer.Stop()
		}
		v.execute(s, pending, rows)
	}
}

func preferred(pref []int, rows int64) bool {
	for _, p := range pref {
		if int64(p) == rows {
			return true
		}
	}
	return false
}

// sameTail: two jobs can share a batch when every input has the same
// dtype and the same dims after the first.
func sameTail(a, b *job) bool {
	for i := range a.inputs {
		x, y := a.inputs[i], b.inputs[i]
		if x.DType != y.DType || len(x.Shape) != len(y.Shape) {
			return false
		}
		for k := 1; k < len(x.Shape); k++ {
			if x.Shape[k] != y.Shape[k] {
				return false
			}
		}
	}
	return true
}

func (v *variant) execute(s runtime.Session, jobs []*job, rows int64) {
	start := time.Now()
	live := jobs[:0:0]
	for _, j := range jobs {
		if err := j.ctx.Err(); err != nil {
			j.done <- jobResult{err: err}
			continue
		}
		live = append(live, j)
	}
	if len(live) == 0 {
		return
	}
	var in []*runtime.Tensor
	if len(live) == 1 {
		in = live[0].inputs
	} else {
		in = make([]*runtime.Tensor, len(live[0].inputs))
		for i := range in {
			parts := make([]*runtime.Tensor, len(live))
			for k, j := range live {
				parts[k] = j.inputs[i]
			}
			in[i] = concat0(parts)
		}
	}
	outs, err := s.Run(context.Background(), in)
	compute := time.Since(start)
	v.recordExec(compute, len(live))
	var off int64
	for _, j := range live {
		q := v.recordJob(start, j)
		if err != nil {
			j.done <- jobResult{err: err}
			continue
		}
		res := make([]*runtime.Tensor, len(outs))
		for i, o := range outs {
			if len(live) == 1 {
				res[i] = o.Clone()
			} else {
				res[i] = slice0(o, off, off+j.batch, rows)
			}
		}
		off += j.batch
		j.done <- jobResult{outs: res, queue: q, compute: compute, batchSize: len(live)}
	}
}

func (v *variant) recordExec(compute time.Duration, jobs int) {
	m := &v.m
	m.execCount.Inc()
	m.batchHist.Observe(float64(jobs))
	m.computeHist.Observe(compute.Seconds())
	m.computeUs.Add(float64(compute.Microseconds()))
}

func (v *variant) recordJob(start time.Time, j *job) time.Duration {
	m := &v.m
	q := start.Sub(j.enqueued)
	m.queueHist.Observe(q.Seconds())
	m.queueUs.Add(float64(q.Microseconds()))
	m.inferCount.Add(float64(j.batch))
	return q
}

// directLoop serves queued jobs of a direct variant one at a time, each
// on whichever instance is free.
func (v *variant) directLoop() {
	defer v.wg.Done()
	for j := range v.queue {
		s := <-v.idle
		v.addDepth(-1)
		v.execute(s, []*job{j}, j.batch)
		v.idle <- s
	}
}

// tryDirect runs a request of a direct variant in the caller's goroutine
// when an instance is idle and no job waits; ok is false otherwise (then
// the request queues). The run gets j.ctx: backends stop at its deadline.
func (v *variant) tryDirect(j *job) (r jobResult, ok bool) {
	if v.depth.Load() != 0 {
		return r, false
	}
	var s runtime.Session
	select {
	case s = <-v.idle:
	default:
		return r, false
	}
	defer func() { v.idle <- s }()
	start := time.Now()
	if err := j.ctx.Err(); err != nil {
		return jobResult{err: err}, true
	}
	outs, err := s.Run(j.ctx, j.inputs)
	compute := time.Since(start)
	v.recordExec(compute, 1)
	q := v.recordJob(start, j)
	if err == nil {
		// A result after the deadline is a timeout, as for a queued
		// request (whose waiter has given up by then).
		err = j.ctx.Err()
	}
	if err != nil {
		return jobResult{err: err}, true
	}
	res := make([]*runtime.Tensor, len(outs))
	for i, o := range outs {
		res[i] = o.Clone() // sessions may reuse output buffers
	}
	return jobResult{outs: res, queue: q, compute: compute, batchSize: 1}, true
}

// concat0 stacks tensors along dim 0.
func concat0(parts []*runtime.Tensor) *runtime.Tensor {
	shape := append([]int64{}, parts[0].Shape...)
	shape[0] = 0
	for _, p := range parts {
		shape[0] += p.Shape[0]
	}
	t := runtime.NewTensor(parts[0].DType, shape)
	if t.DType == graph.String {
		t.Strings = t.Strings[:0]
		for _, p := range parts {
			t.Strings = append(t.Strings, p.Strings...)
		}
		return t
	}
	off := 0
	for _, p := range parts {
		off += copy(t.Raw[off:], p.Raw)
	}
	return t
}

// slice0 copies rows [lo, hi) of a batched output with total rows.
func slice0(t *runtime.Tensor, lo, hi, total int64) *runtime.Tensor {
	shape := append([]int64{}, t.Shape...)
	shape[0] = hi - lo
	out := runtime.NewTensor(t.DType, shape)
	if t.DType == graph.String {
		per := int64(len(t.Strings)) / total
		copy(out.Strings, t.Strings[lo*per:hi*per])
		return out
	}
	per := int64(len(t.Raw)) / total
	copy(out.Raw, t.Raw[lo*per:hi*per])
	return out
}

// submit queues a job without blocking; a full queue is refused at once.
func (v *variant) submit(j *job) (err error) {
	reserved := false
	defer func() {
		if recover() != nil { // queue closed during shutdown
			err = ErrShuttingDown
			if reserved {
				v.addDepth(-1)
			}
		}
	}()
	if v.direct {
		// depth also counts jobs taken off the queue that wait for an
		// instance: reserve a place under QueueSize before queueing.
		for !reserved {
			n := v.depth.Load()
			if n >= int64(v.srv.cfg.QueueSize) {
				return ErrQueueFull
			}
			if reserved = v.depth.CompareAndSwap(n, n+1); reserved {
				v.m.queueDepth.Set(float64(n + 1))
			}
		}
		select {
		case v.queue <- j:
			return nil
		default: // cannot happen: the queue holds QueueSize
			v.addDepth(-1)
			return ErrQueueFull
		}
	}
	select {
	case v.queue <- j:
		v.addDepth(1)
		return nil
	default:
		return ErrQueueFull
	}
}

// addDepth tracks the queue length for the router and the metric.
func (v *variant) addDepth(d int64) {
	n := v.depth.Add(d)
	v.m.queueDepth.Set(float64(n))
}

func (v *variant) stop() {
	close(v.queue)
	v.wg.Wait()
	if v.direct {
		for range v.sessions { // every instance back before closing
			<-v.idle
		}
	}
	for _, s := range v.sessions {
		s.Close()
	}
}

// latWindow keeps recent request latencies for the router's rolling p99.
type latWindow struct {
	mu   sync.Mutex
	ts   []time.Time
	lat  []time.Duration
	keep time.Duration
}

func (w *latWindow) add(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	w.ts = append(w.ts, now)
	w.lat = append(w.lat, d)
	w.trim(now)
}

func (w *latWindow) trim(now time.Time) {
	cut := 0
	for cut < len(w.ts) && now.Sub(w.ts[cut]) > w.keep {
		cut++
	}
	if cut > 0 {
		w.ts = append(w.ts[:0], w.ts[cut:]...)
		w.lat = append(w.lat[:0], w.lat[cut:]...)
	}
	if len(w.ts) > 10000 {
		drop := len(w.ts) - 10000
		w.ts = append(w.ts[:0], w.ts[drop:]...)
		w.lat = append(w.lat[:0], w.lat[drop:]...)
	}
}

// p99 of the window and the number of samples.
func (w *latWindow) p99() (time.Duration, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.trim(time.Now())
	if len(w.lat) == 0 {
		return 0, 0
	}
	s := append([]time.Duration(nil), w.lat...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	k := (len(s)*99 + 99) / 100
	if k > len(s) {
		k = len(s)
	}
	return s[k-1], len(s)
}
