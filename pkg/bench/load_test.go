package bench

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/optictl/optictl/pkg/runtime"
)

func fakeWorkers(n int, sleep time.Duration) []Worker {
	in := []*runtime.Tensor{runtime.FromFloat32([]int64{1, 4}, make([]float32, 4))}
	w := make([]Worker, n)
	for i := range w {
		w[i] = Worker{Session: &fakeSession{sleep: sleep, scale: 1, fixed: -1}, Inputs: in}
	}
	return w
}

// These tests check what the harness measures, with sessions of known
// latency; they assert only bounds that a slow machine cannot break.
func TestMeasureClosedLoop(t *testing.T) {
	const sleep = 2 * time.Millisecond
	cases := []struct {
		name    string
		workers int
		iters   int
	}{{"one worker", 1, 7}, {"four workers", 4, 10}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := fakeWorkers(c.workers, sleep)
			run, err := Measure(context.Background(), w, Load{}, c.iters, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(run.Latencies) != c.iters {
				t.Fatalf("%d latencies, want exactly %d", len(run.Latencies), c.iters)
			}
			total := 0
			for _, x := range w {
				total += x.Session.(*fakeSession).runs
			}
			if total != c.iters {
				t.Fatalf("%d runs, want %d", total, c.iters)
			}
			for _, l := range run.Latencies {
				if time.Duration(l) < sleep {
					t.Fatalf("latency %v below the session's sleep %v", time.Duration(l), sleep)
				}
			}
			// Each worker runs its share back to back.
			if min := time.Duration((c.iters+c.workers-1)/c.workers) * sleep; run.Wall < min {
				t.Fatalf("wall %v below %v", run.Wall, min)
			}
		})
	}
}

func TestMeasureDuration(t *testing.T) {
	w := fakeWorkers(2, time.Millisecond)
	run, err := Measure(context.Background(), w, Load{}, 0, 30*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if run.Wall < 30*time.Millisecond || len(run.Latencies) == 0 {
		t.Fatalf("wall %v with %d runs", run.Wall, len(run.Latencies))
	}
	// At most 2 workers x 30 ms / 1 ms, plus the one each finishes.
	if len(run.Latencies) > 62 {
		t.Fatalf("%d runs in 30 ms of 1 ms runs on 2 workers", len(run.Latencies))
	}
}

func TestMeasureOpenLoopCountsQueueing(t *testing.T) {
	// One worker whose runs take 4 ms, fed every 1 ms: request k waits for
	// the k before it, so it completes no earlier than 4(k+1) ms after the
	// start, i.e. 4(k+1) - k = 3k + 4 ms after its scheduled arrival.
	const n = 12
	w := fakeWorkers(1, 4*time.Millisecond)
	run, err := Measure(context.Background(), w, Load{Rate: 1000, Arrival: "constant"}, n, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Latencies) != n {
		t.Fatalf("%d latencies, want %d", len(run.Latencies), n)
	}
	// One worker completes requests in order.
	for k, l := range run.Latencies {
		if min := time.Duration(3*k+4) * time.Millisecond; time.Duration(l) < min {
			t.Fatalf("request %d: latency %v, queueing implies at least %v", k, time.Duration(l), min)
		}
	}
	// A closed loop on the same session reports only the service time, far below.
	closed, _ := Measure(context.Background(), w, Load{}, n, 0)
	if slices.Max(closed.Latencies) >= slices.Max(run.Latencies) {
		t.Fatal("the open loop under overload should report longer latencies than the closed loop")
	}
}

func TestMeasureOpenLoopPaced(t *testing.T) {
	// At 200/s the schedule spans 9 gaps of 5 ms: the slice cannot end sooner.
	for _, arrival := range []string{"constant", "poisson"} {
		t.Run(arrival, func(t *testing.T) {
			w := fakeWorkers(2, 0)
			run, err := Measure(context.Background(), w, Load{Rate: 200, Arrival: arrival, Seed: 5}, 10, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(run.Latencies) != 10 {
				t.Fatalf("%d latencies", len(run.Latencies))
			}
			if arrival == "constant" && run.Wall < 45*time.Millisecond {
				t.Fatalf("10 arrivals at 200/s took %v", run.Wall)
			}
		})
	}
}

func TestMeasureErrors(t *testing.T) {
	w := fakeWorkers(3, 0)
	boom := errors.New("boom")
	for _, x := range w {
		x.Session.(*fakeSession).fail = boom
	}
	for _, load := range []Load{{}, {Rate: 1000}} {
		if _, err := Measure(context.Background(), w, load, 30, 0); !errors.Is(err, boom) {
			t.Fatalf("load %+v: error %v, want the session's", load, err)
		}
	}
	if _, err := Measure(context.Background(), nil, Load{}, 1, 0); err == nil {
		t.Fatal("no workers accepted")
	}
	if _, err := Measure(context.Background(), fakeWorkers(1, 0), Load{}, 0, 0); err == nil {
		t.Fatal("no budget accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Measure(ctx, fakeWorkers(1, 0), Load{}, 0, time.Second); err == nil {
		t.Fatal("a cancelled run returned a result")
	}
}
