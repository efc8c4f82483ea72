package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// noopSession returns at once: it measures the harness itself.
type noopSession struct{ out []*runtime.Tensor }

func (s *noopSession) Inputs() []runtime.IOInfo {
	return []runtime.IOInfo{{Name: "x", DType: graph.Float, Shape: []int64{-1, 4}}}
}
func (s *noopSession) Outputs() []runtime.IOInfo {
	return []runtime.IOInfo{{Name: "y", DType: graph.Float, Shape: []int64{-1, 4}}}
}
func (s *noopSession) Run(context.Context, []*runtime.Tensor) ([]*runtime.Tensor, error) {
	return s.out, nil
}
func (s *noopSession) Device() string { return "cpu" }
func (s *noopSession) Close() error   { return nil }

// fakeSession sleeps for a known time and computes y = scale*x (+ bias on
// element 0 of each row), recording the order of calls in a shared log.
type fakeSession struct {
	name   string
	sleep  time.Duration
	scale  float32
	bias   float32
	device string
	fixed  int64 // first input dim; -1 dynamic
	log    *callLog
	fail   error
	runs   int
}

type callLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *callLog) add(s string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.calls = append(l.calls, s)
	l.mu.Unlock()
}

func (s *fakeSession) Inputs() []runtime.IOInfo {
	return []runtime.IOInfo{{Name: "x", DType: graph.Float, Shape: []int64{s.fixed, 4}}}
}
func (s *fakeSession) Outputs() []runtime.IOInfo {
	return []runtime.IOInfo{{Name: "y", DType: graph.Float, Shape: []int64{s.fixed, 4}}}
}
func (s *fakeSession) Run(ctx context.Context, in []*runtime.Tensor) ([]*runtime.Tensor, error) {
	if err := runtime.CheckInputs(s.Inputs(), in); err != nil {
		return nil, err
	}
	s.runs++
	s.log.add(s.name)
	if s.fail != nil {
		return nil, s.fail
	}
	if s.sleep > 0 {
		time.Sleep(s.sleep)
	}
	x := in[0].Float32s()
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = s.scale * v
		if i%4 == 0 {
			y[i] += s.bias
		}
	}
	return []*runtime.Tensor{runtime.FromFloat32(in[0].Shape, y)}, nil
}
func (s *fakeSession) Device() string {
	if s.device == "" {
		return "cpu"
	}
	return s.device
}
func (s *fakeSession) Close() error { return nil }

// fakeOpener opens fakeSessions configured per model path.
func fakeOpener(proto map[string]fakeSession, log *callLog, opened map[string]int) Opener {
	var mu sync.Mutex
	return func(path string, opts runtime.Options) (runtime.Session, error) {
		p, ok := proto[path]
		if !ok {
			return nil, fmt.Errorf("fake: no model %s", path)
		}
		if opts.Device != "" && opts.Device != "cpu" && p.device == "" {
			return nil, fmt.Errorf("fake: device %q is not available", opts.Device)
		}
		mu.Lock()
		if opened != nil {
			opened[path]++
		}
		mu.Unlock()
		s := p
		s.name = path
		s.log = log
		if s.scale == 0 {
			s.scale = 1
		}
		return &s, nil
	}
}
