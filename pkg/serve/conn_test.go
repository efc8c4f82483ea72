package serve

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestReadTimeoutScalesWithBodyLimit(t *testing.T) {
	for _, c := range []struct {
		header time.Duration
		body   int64
		read   time.Duration
		want   time.Duration
	}{
		{0, 0, 0, 10*time.Second + 64*time.Second}, // the defaults
		{time.Second, 8 << 20, 0, 9 * time.Second},
		{time.Second, 8 << 20, 3 * time.Second, 3 * time.Second}, // given
	} {
		cfg := Config{ReadHeaderTimeout: c.header, MaxBodyBytes: c.body, ReadTimeout: c.read}
		cfg.Defaults()
		if cfg.ReadTimeout != c.want {
			t.Errorf("header %v, body %d, read %v: ReadTimeout %v, want %v", c.header, c.body, c.read, cfg.ReadTimeout, c.want)
		}
	}
}

// slowConn opens a connection and starts a request whose body never
// arrives in full; it trickles one byte every `every` until the server
// closes the connection, and reports when that happened on closed.
func slowConn(t *testing.T, addr string, every time.Duration, closed chan<- time.Duration) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	fmt.Fprintf(c, "POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
	go func() {
		go func() { // the server closing shows up as a failed read
			io.Copy(io.Discard, c)
			c.Close()
		}()
		for {
			time.Sleep(every)
			if _, err := c.Write([]byte(" ")); err != nil {
				break
			}
		}
		if closed != nil {
			closed <- time.Since(start)
		}
	}()
	return c
}

// A body sent at 10 bytes/s is cut off at ReadTimeout (issue 18 item 3:
// only ReadHeaderTimeout was set, so it was never timed out).
func TestSlowBodyClosedWithinReadTimeout(t *testing.T) {
	p := writeMLP(t, t.TempDir(), "mlp.onnx", 1)
	ts := start(t, Config{Models: oneModel("mlp", p), GRPCAddr: "off", ReadTimeout: 500 * time.Millisecond})
	closed := make(chan time.Duration, 1)
	c := slowConn(t, strings.TrimPrefix(ts.base, "http://"), 100*time.Millisecond, closed)
	defer c.Close()
	select {
	case d := <-closed:
		if d < 400*time.Millisecond {
			t.Fatalf("closed after %v, before the read timeout", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("a slow body was not cut off within 3 s (ReadTimeout 500ms)")
	}
}

// Slow connections neither starve valid requests nor exhaust file
// descriptors: below MaxConnections valid requests are served at once; at
// the limit they wait only until the slow ones time out.
func TestSlowConnectionsLeaveValidRequestsServed(t *testing.T) {
	p := writeMLP(t, t.TempDir(), "mlp.onnx", 1)
	body := inferBody([][]float32{{1, 2, 3, 4}}, "")
	t.Run("below the limit", func(t *testing.T) {
		ts := start(t, Config{Models: oneModel("mlp", p), GRPCAddr: "off", MaxConnections: 64, ReadTimeout: 5 * time.Second})
		addr := strings.TrimPrefix(ts.base, "http://")
		for i := 0; i < 48; i++ {
			c := slowConn(t, addr, 200*time.Millisecond, nil)
			defer c.Close()
		}
		client := &http.Client{Timeout: 2 * time.Second}
		for i := 0; i < 10; i++ {
			resp, err := client.Post(ts.base+"/v2/models/mlp/infer", "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatalf("valid request %d beside 48 slow connections: %v", i, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("valid request %d: %d", i, resp.StatusCode)
			}
		}
	})
	t.Run("at the limit", func(t *testing.T) {
		ts := start(t, Config{Models: oneModel("mlp", p), GRPCAddr: "off", MaxConnections: 8, ReadTimeout: 600 * time.Millisecond})
		addr := strings.TrimPrefix(ts.base, "http://")
		for i := 0; i < 8; i++ {
			c := slowConn(t, addr, 100*time.Millisecond, nil)
			defer c.Close()
		}
		time.Sleep(100 * time.Millisecond) // all 8 accepted
		began := time.Now()
		client := &http.Client{Timeout: 5 * time.Second}
		resp, err := client.Post(ts.base+"/v2/models/mlp/infer", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("valid request behind 8 slow connections: %v", err)
		}
		resp.Body.Close()
		waited := time.Since(began)
		if resp.StatusCode != 200 || waited < 300*time.Millisecond || waited > 3*time.Second {
			t.Fatalf("status %d after %v; want 200 once the slow connections time out (~0.5 s)", resp.StatusCode, waited)
		}
	})
}

// On shutdown readiness turns false at once, requests keep being served
// for the drain delay, and every request the server read gets its
// response (issue 18 item 4: 270-420 of them got a reset).
func TestDrainLosesNoRequestTheServerRead(t *testing.T) {
	p := writeMLP(t, t.TempDir(), "mlp.onnx", 1)
	const drain = 400 * time.Millisecond
	ts := start(t, Config{Models: oneModel("mlp", p), GRPCAddr: "off", DrainDelay: drain, ShutdownTimeout: 2 * time.Second})
	body := inferBody([][]float32{{1, 2, 3, 4}}, "")
	var ok200, other, failed, okDuringDrain atomic.Int64
	var stopping atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 5 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Post(ts.base+"/v2/models/mlp/infer", "application/json", strings.NewReader(body))
				if err != nil {
					failed.Add(1) // refused after the drain: never read
					time.Sleep(5 * time.Millisecond)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					ok200.Add(1)
					if stopping.Load() {
						okDuringDrain.Add(1)
					}
				} else {
					other.Add(1)
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	began := time.Now()
	stopping.Store(true)
	ts.cancel()
	// readiness is false at once
	time.Sleep(20 * time.Millisecond)
	resp, err := http.Get(ts.base + "/v2/health/ready")
	if err != nil {
		t.Fatalf("readiness during the drain: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readiness during the drain: %d, want 503", resp.StatusCode)
	}
	select {
	case err := <-ts.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server did not stop")
	}
	ts.cancel = nil
	took := time.Since(began)
	time.Sleep(50 * time.Millisecond) // clients see the refusals
	close(stop)
	wg.Wait()
	read := ts.inferRead.Load()
	t.Logf("read %d, 200 %d (%d during the drain), other %d, client errors %d, stop took %v", read, ok200.Load(), okDuringDrain.Load(), other.Load(), failed.Load(), took)
	if got := ok200.Load() + other.Load(); got != read {
		t.Fatalf("the server read %d infer requests but answered %d: %d lost", read, got, read-got)
	}
	if other.Load() != 0 {
		t.Fatalf("%d requests got an error status during the drain", other.Load())
	}
	if okDuringDrain.Load() == 0 {
		t.Fatal("nothing was served during the drain delay")
	}
	if took < drain || took > drain+2*time.Second {
		t.Fatalf("shutdown took %v; want the drain delay %v plus a little", took, drain)
	}
}

// Request bodies held at once are bounded by MaxInflightBody: while one
// client holds most of it (a body sent but not finished), another large
// body is refused with 429 after a short wait, a small one is served, and
// the budget is whole again once the first finishes.
func TestInflightBodyBudget(t *testing.T) {
	p := writeMLP(t, t.TempDir(), "mlp.onnx", 1)
	ts := start(t, Config{Models: oneModel("mlp", p), GRPCAddr: "off", MaxBodyBytes: 1 << 20, MaxInflightBody: 1 << 20})
	addr := strings.TrimPrefix(ts.base, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const claimed = 600 << 10
	fmt.Fprintf(c, "POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", claimed)
	c.Write([]byte(strings.Repeat(" ", 590<<10))) // 590 KB sent, the rest held back
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ts.bodies.mu.Lock()
		free := ts.bodies.free
		ts.bodies.mu.Unlock()
		if free <= 1<<20-590<<10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server never read the first body (budget free %d)", free)
		}
	}
	big := `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}` + strings.Repeat(" ", 512<<10)
	code, m, _ := post(t, ts.base+"/v2/models/mlp/infer", big)
	if code != http.StatusTooManyRequests || !strings.Contains(fmt.Sprint(m["error"]), "budget") {
		t.Fatalf("a large body while the budget is held: %d %v, want 429", code, m)
	}
	if code, _, _ := post(t, ts.base+"/v2/models/mlp/infer", inferBody([][]float32{{1, 2, 3, 4}}, "")); code != 200 {
		t.Fatalf("a small body while the budget is held: %d", code)
	}
	c.Write([]byte(strings.Repeat(" ", claimed-590<<10))) // finish: 400, malformed
	io.Copy(io.Discard, io.LimitReader(c, 100))
	budgetFree := func(want int64) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			ts.bodies.mu.Lock()
			free := ts.bodies.free
			ts.bodies.mu.Unlock()
			if free == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("budget %d free, want %d", free, want)
			}
		}
	}
	budgetFree(1 << 20) // every byte comes back
	if code, _, _ := post(t, ts.base+"/v2/models/mlp/infer", big); code != 200 {
		t.Fatalf("a large body after the budget came back: %d", code)
	}
	budgetFree(1 << 20)
}
