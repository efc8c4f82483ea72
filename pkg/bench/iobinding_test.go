package bench

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/optictl/optictl/pkg/runtime"
)

// boundSession is a fakeSession that can rerun the inputs of its last Run
// (as the ort backend does with io binding), recording the batch it reran.
type boundSession struct {
	fakeSession
	mu      sync.Mutex
	bound   int64   // batch of the last Run's inputs; 0: none
	reruns  []int64 // batch of each RunBound
	boundOf *[]int64
}

func (s *boundSession) Run(ctx context.Context, in []*runtime.Tensor) ([]*runtime.Tensor, error) {
	out, err := s.fakeSession.Run(ctx, in)
	if err == nil {
		s.bound = in[0].Shape[0]
	}
	return out, err
}

func (s *boundSession) RunBound(context.Context) error {
	if s.bound == 0 {
		return errors.New("fake: RunBound before Run")
	}
	s.mu.Lock()
	*s.boundOf = append(*s.boundOf, s.bound)
	s.mu.Unlock()
	return nil
}

// TestRunWithIOBinding: with Options.IOBinding every timed request is a
// RunBound on the inputs of its own batch point (bound by a Run after the
// warm-up, even with no warm-up), and the report says so.
func TestRunWithIOBinding(t *testing.T) {
	for _, warmup := range []int{0, 2} {
		var reruns []int64
		cfg := baseConfig("A")
		cfg.Batches, cfg.Warmup = []int{1, 4}, warmup
		cfg.Options.IOBinding = true
		cfg.Open = func(path string, opts runtime.Options) (runtime.Session, error) {
			if !opts.IOBinding {
				t.Error("the session was opened without IOBinding")
			}
			return &boundSession{fakeSession: fakeSession{name: path, scale: 1, fixed: -1}, boundOf: &reruns}, nil
		}
		rep, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatalf("warm-up %d: %v", warmup, err)
		}
		if !rep.IOBinding {
			t.Fatal("the report does not say io binding")
		}
		count := map[int64]int{}
		for i, b := range reruns {
			count[b]++
			if i > 0 && b < reruns[i-1] {
				t.Fatalf("warm-up %d: RunBound on batch %d after batch %d: stale inputs", warmup, b, reruns[i-1])
			}
		}
		if count[1] != cfg.Iterations || count[4] != cfg.Iterations || len(count) != 2 {
			t.Fatalf("warm-up %d: RunBound batches %v, want %d of batch 1 and of batch 4", warmup, count, cfg.Iterations)
		}
	}

	// A session that cannot rerun bound inputs is an error, not ignored.
	cfg := baseConfig("A")
	cfg.Options.IOBinding = true
	cfg.Open = fakeOpener(map[string]fakeSession{"A": {fixed: -1}}, nil, nil)
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "bound inputs") {
		t.Fatalf("io binding on a session without RunBound: %v", err)
	}
}
