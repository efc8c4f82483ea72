package main

import (
	"bytes"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/optictl/optictl/internal/testutil"
)

func TestServeUsageErrors(t *testing.T) {
	mnist := filepath.Join(testutil.ModelsDir(t), "mnist", "model.onnx")
	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no model", []string{"serve"}, ExitUsage, "at least one model"},
		{"bad backend", []string{"serve", "--backend", "tvm", mnist}, ExitUsage, "--backend"},
		{"variant with two models", []string{"serve", "--variant", "f=x.onnx", "a=" + mnist, "b=" + mnist}, ExitUsage, "single served model"},
		{"bad variant", []string{"serve", "--variant", "nope", mnist}, ExitUsage, "NAME=PATH"},
		{"bad cache", []string{"serve", "--cache", "memcached://x", mnist}, ExitUsage, "redis://"},
		{"zero instances", []string{"serve", "--instances", "0", mnist}, ExitUsage, "--instances"},
		{"negative read timeout", []string{"serve", "--read-timeout", "-1s", mnist}, ExitUsage, "--read-timeout may not be negative"},
		{"tls cert without key", []string{"serve", "--tls-cert", "c.pem", mnist}, ExitUsage, "--tls-key"},
		{"bad restriction", []string{"serve", "--restrict", "everything=X:y", mnist}, ExitUsage, "unknown endpoint group"},
		{"hmac key without redis", []string{"serve", "--cache-hmac-key", "k", mnist}, ExitUsage, "needs --cache redis://"},
		{"negative max connections", []string{"serve", "--max-connections", "-1", mnist}, ExitUsage, "--max-connections"},
		{"missing file", []string{"serve", "--backend", "interp", "--http", "127.0.0.1:0", "--grpc", "off", "/no/such/model.onnx"}, ExitError, "no such file"},
		{"duplicate names", []string{"serve", "--backend", "interp", "a=" + mnist, "a=" + mnist}, ExitError, "given twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Execute(c.args, &out, &errb)
			if code != c.code || !strings.Contains(errb.String(), c.msg) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", code, c.code, errb.String(), c.msg)
			}
		})
	}
}

// syncBuffer is a goroutine-safe writer for the server's stdout.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestServeSIGTERM starts the real command, answers a request, then sends
// the process SIGTERM: serve must drain and return exit code 0.
func TestServeSIGTERM(t *testing.T) {
	mnist := filepath.Join(testutil.ModelsDir(t), "mnist", "model.onnx")
	var out syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Execute([]string{"serve", "--backend", "interp", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--drain-delay", "500ms", "mnist=" + mnist}, &out, io.Discard)
	}()
	re := regexp.MustCompile(`http (127\.0\.0\.1:\d+)`)
	var addr string
	for deadline := time.Now().Add(20 * time.Second); addr == ""; {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
			break
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited early with %d: %s", code, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("serve did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + addr + "/v2/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if i > 200 {
			t.Fatal("never ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	body := `{"inputs":[{"name":"Input3","shape":[1,1,28,28],"datatype":"FP32","data":[` + strings.TrimSuffix(strings.Repeat("0.5,", 784), ",") + `]}]}`
	resp, err := http.Post("http://"+addr+"/v2/models/mnist/infer", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"Plus214_Output_0"`) {
		t.Fatalf("infer: %d %s", resp.StatusCode, b)
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// during --drain-delay: not ready, still serving
	time.Sleep(50 * time.Millisecond)
	if resp, err := http.Get("http://" + addr + "/v2/health/ready"); err != nil || resp.StatusCode != 503 {
		t.Fatalf("readiness after SIGTERM: %v %v, want 503", resp, err)
	} else {
		resp.Body.Close()
	}
	if resp, err := http.Post("http://"+addr+"/v2/models/mnist/infer", "application/json", strings.NewReader(body)); err != nil || resp.StatusCode != 200 {
		t.Fatalf("infer during the drain: %v %v, want 200", resp, err)
	} else {
		resp.Body.Close()
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited %d after SIGTERM", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
}
