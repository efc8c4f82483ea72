package interp

import (
	"fmt"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWorkerPoolCovers checks that every index is visited exactly once,
// for chunk counts below, at and above the thread count, including nested
// calls from inside a chunk (which must not deadlock) and concurrent
// callers.
func TestWorkerPoolCovers(t *testing.T) {
	wp := &workerPool{}
	for _, threads := range []int{1, 2, 3, 8} {
		for _, n := range []int{0, 1, 2, 3, 7, 8, 100, 1001} {
			t.Run(fmt.Sprintf("threads%d_n%d", threads, n), func(t *testing.T) {
				hits := make([]int32, n)
				wp.run(n, threads, func(lo, hi int) {
					for i := lo; i < hi; i++ {
						atomic.AddInt32(&hits[i], 1)
					}
				})
				for i, h := range hits {
					if h != 1 {
						t.Fatalf("index %d visited %d times", i, h)
					}
				}
			})
		}
	}
	t.Run("nested", func(t *testing.T) {
		done := make(chan int64)
		go func() {
			var sum atomic.Int64
			wp.run(16, 3, func(lo, hi int) {
				for i := lo; i < hi; i++ {
					wp.run(50, 3, func(lo2, hi2 int) {
						for j := lo2; j < hi2; j++ {
							sum.Add(int64(i*50 + j))
						}
					})
				}
			})
			done <- sum.Load()
		}()
		select {
		case got := <-done:
			if want := int64(16*50) * int64(16*50-1) / 2; got != want {
				t.Fatalf("sum %d, want %d", got, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("nested Parallel deadlocked")
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		var total atomic.Int64
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := 0; r < 50; r++ {
					wp.run(64, 3, func(lo, hi int) { total.Add(int64(hi - lo)) })
				}
			}()
		}
		wg.Wait()
		if got := total.Load(); got != 4*50*64 {
			t.Fatalf("visited %d, want %d", got, 4*50*64)
		}
	})
}

// TestWorkerPoolPanic checks that a panic in any chunk reaches the caller
// (where exec turns it into an error) and that the pool still works after.
func TestWorkerPoolPanic(t *testing.T) {
	wp := &workerPool{}
	for _, bad := range []int{0, 5, 9} {
		func() {
			defer func() {
				if r := recover(); r == nil || fmt.Sprint(r) != "chunk panic" {
					t.Errorf("chunk at %d: recovered %v, want the chunk's panic", bad, r)
				}
			}()
			wp.run(10, 4, func(lo, hi int) {
				if lo <= bad && bad < hi {
					panic("chunk panic")
				}
			})
		}()
	}
	var n atomic.Int64
	wp.run(10, 4, func(lo, hi int) { n.Add(int64(hi - lo)) })
	if n.Load() != 10 {
		t.Fatalf("after panics: visited %d, want 10", n.Load())
	}
}

// TestWorkerPoolExits checks that a dropped pool's workers exit.
func TestWorkerPoolExits(t *testing.T) {
	base := goruntime.NumGoroutine()
	func() {
		wp := &workerPool{}
		wp.run(100, 5, func(lo, hi int) {})
	}()
	deadline := time.Now().Add(5 * time.Second)
	for goruntime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, %d before the pool: workers did not exit", goruntime.NumGoroutine(), base)
		}
		goruntime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkWorkerPool measures the overhead of one Parallel call with a
// small body, persistent workers against goroutines per call.
func BenchmarkWorkerPool(b *testing.B) {
	var sink [64]float32
	body := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			sink[i%64] += float32(i)
		}
	}
	for _, persistent := range []bool{false, true} {
		b.Run(fmt.Sprintf("persistent=%v", persistent), func(b *testing.B) {
			defer func() { poolPersistent = true }()
			poolPersistent = persistent
			wp := &workerPool{}
			for b.Loop() {
				wp.run(256, 2, body)
			}
		})
	}
}
