package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/optictl/optictl/pkg/runtime"
)

// Worker is one session with the inputs it runs. A session is never shared
// between workers (runtime.Session is not safe for concurrent Run).
type Worker struct {
	Session runtime.Session
	Inputs  []*runtime.Tensor
	// Bound, when set, is Session run again on the Inputs its last Run
	// bound (runtime.Options.IOBinding): each timed request is one RunBound,
	// with no copy of the inputs in or of the outputs out.
	Bound BoundRunner
}

// BoundRunner is a session that can run again on the inputs bound by its
// last Run without copying them (the ort backend with
// runtime.Options.IOBinding; with --device cuda they stay in GPU memory).
type BoundRunner interface {
	RunBound(ctx context.Context) error
}

// run is one request of the worker.
func (w Worker) run(ctx context.Context) error {
	if w.Bound != nil {
		return w.Bound.RunBound(ctx)
	}
	_, err := w.Session.Run(ctx, w.Inputs)
	return err
}

// Load says how requests are generated.
type Load struct {
	// Rate > 0 selects the open loop: requests arrive at Rate per second
	// whatever the model's speed; 0 selects the closed loop: each worker
	// sends its next request when the previous one returns.
	Rate float64
	// Arrival is "constant" (evenly spaced) or "poisson" (exponential
	// gaps) for the open loop.
	Arrival string
	// Seed seeds Poisson arrivals.
	Seed int64
}

// Slice is what one measurement slice produced: latencies in nanoseconds and
// the wall time of the slice.
type Slice struct {
	Latencies []int64
	Wall      time.Duration
}

// Measure runs one slice: iterations requests in all (when > 0) or for
// duration. In the closed loop a latency is the time of one Session.Run; in
// the open loop it runs from the request's scheduled arrival time to its
// completion, so time spent queued behind busy workers counts (as
// perf_analyzer measures it). The first Run error stops the slice and is
// returned.
func Measure(ctx context.Context, workers []Worker, load Load, iterations int, duration time.Duration) (Slice, error) {
	if len(workers) == 0 {
		return Slice{}, fmt.Errorf("bench: no workers")
	}
	if iterations <= 0 && duration <= 0 {
		return Slice{}, fmt.Errorf("bench: neither iterations nor a duration")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		firstErr error
		errOnce  sync.Once
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	lat := make([][]int64, len(workers))
	capHint := 1024
	if iterations > 0 {
		// Preallocate for the expected share, within reason: an absurd
		// --iterations grows the slices as it goes instead.
		capHint = min(iterations/len(workers)+1, 1<<20)
	}
	for i := range lat {
		lat[i] = make([]int64, 0, capHint)
	}
	var wg sync.WaitGroup
	start := time.Now()
	if load.Rate > 0 {
		ch := make(chan time.Time, 1024)
		for i := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w := workers[i]
				l := lat[i]
				for sched := range ch {
					if ctx.Err() != nil {
						continue // drain
					}
					if err := w.run(ctx); err != nil {
						fail(err)
						continue
					}
					l = append(l, int64(time.Since(sched)))
				}
				lat[i] = l
			}()
		}
		dispatch(ctx, ch, load, start, iterations, duration)
		close(ch)
	} else {
		var left atomic.Int64
		left.Store(int64(iterations))
		deadline := start.Add(duration)
		for i := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				lat[i] = closedLoop(ctx, workers[i], lat[i], &left, iterations > 0, deadline, fail)
			}()
		}
	}
	wg.Wait()
	wall := time.Since(start)
	if firstErr != nil {
		return Slice{}, firstErr
	}
	if ctx.Err() != nil {
		// The parent was cancelled; a partial slice is not a result.
		return Slice{}, fmt.Errorf("bench: %w", context.Cause(ctx))
	}
	n := 0
	for _, l := range lat {
		n += len(l)
	}
	out := make([]int64, 0, n)
	for _, l := range lat {
		out = append(out, l...)
	}
	return Slice{Latencies: out, Wall: wall}, nil
}

// closedLoop is the hot path: two clock reads, one atomic decrement and an
// append around each Run.
func closedLoop(ctx context.Context, w Worker, l []int64, left *atomic.Int64, counted bool, deadline time.Time, fail func(error)) []int64 {
	for ctx.Err() == nil {
		if counted && left.Add(-1) < 0 {
			break
		}
		t0 := time.Now()
		if err := w.run(ctx); err != nil {
			fail(err)
			break
		}
		t1 := time.Now()
		l = append(l, int64(t1.Sub(t0)))
		if !counted && !t1.Before(deadline) {
			break
		}
	}
	return l
}

// dispatch sends the scheduled arrival times of the open loop. Times are
// fixed in advance (start + cumulative gaps); a send that blocks because
// every worker is busy delays the request, not its scheduled time.
func dispatch(ctx context.Context, ch chan<- time.Time, load Load, start time.Time, iterations int, duration time.Duration) {
	r := rand.New(rand.NewPCG(uint64(load.Seed), 0xa11))
	gap := float64(time.Second) / load.Rate
	var offset float64 // ns since start
	for k := 0; ; k++ {
		if iterations > 0 && k >= iterations {
			return
		}
		if load.Arrival == "poisson" {
			offset += r.ExpFloat64() * gap
		} else if k > 0 {
			offset += gap
		}
		if duration > 0 && iterations <= 0 && time.Duration(offset) >= duration {
			return
		}
		at := start.Add(time.Duration(offset))
		if d := time.Until(at); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		select {
		case ch <- at:
		case <-ctx.Done():
			return
		}
	}
}
