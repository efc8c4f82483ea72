//go:build serveprobe

package serve

// TestServeProbe repeats issue 18's hostile-client probes against the real
// optictl binary on loopback and reports the figures the issue asks for:
// peak RSS under a 10,000-request malformed flood (goal <= 2 x idle RSS +
// the body limit), valid-request p99 during the flood, how many slow
// connections still leave valid requests served, and requests lost on
// SIGTERM under load (goal 0). Bounded in count and time. Run it with
// scripts/serve-probe.sh (it is behind the serveprobe build tag: it builds
// the binary and takes about a minute).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/optictl/optictl/pkg/serve/kservepb"
)

func procKB(t *testing.T, pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			v, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return v
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func p99(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[(len(d)*99)/100]
}

type probeReport struct {
	MaxBodyBytes         int64   `json:"max_body_bytes"`
	IdleRSSMB            float64 `json:"idle_rss_mb"`
	FloodRequests        int     `json:"flood_requests"`
	FloodStatus          map[int]int
	FloodPeakRSSMB       float64 `json:"flood_peak_rss_mb"`
	FloodGoalMB          float64 `json:"flood_goal_mb"`
	RSSAfterFloodMB      float64 `json:"rss_after_flood_mb"`
	ValidDuringFlood     int     `json:"valid_during_flood"`
	ValidFailedFlood     int     `json:"valid_failed_during_flood"`
	ValidP99FloodMs      float64 `json:"valid_p99_during_flood_ms"`
	ValidP99IdleMs       float64 `json:"valid_p99_idle_ms"`
	Slow                 []slowResult
	SigtermSent          int64   `json:"sigterm_requests_sent"`
	SigtermOK            int64   `json:"sigterm_ok"`
	SigtermDuringDrainOK int64   `json:"sigterm_ok_during_drain"`
	SigtermRefused       int64   `json:"sigterm_refused_never_read"`
	SigtermLost          int64   `json:"sigterm_lost"`
	SigtermExit          int     `json:"sigterm_exit_code"`
	SigtermStopS         float64 `json:"sigterm_stop_seconds"`
}

type slowResult struct {
	Slow     int     `json:"slow_connections"`
	Opened   int     `json:"opened"`
	Valid    int     `json:"valid_sent"`
	Served   int     `json:"valid_served"`
	P99Ms    float64 `json:"valid_p99_ms"`
	ServerFD int     `json:"server_open_fds"`
}

func TestServeProbe(t *testing.T) {
	bin := os.Getenv("OPTICTL_BIN")
	dir := t.TempDir()
	if bin == "" {
		bin = filepath.Join(dir, "optictl")
		if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/optictl").CombinedOutput(); err != nil {
			t.Fatalf("build: %v\n%s", err, out)
		}
	}
	model := writeMLP(t, dir, "mlp.onnx", 1)
	haddr, gaddr := freeAddr(t), freeAddr(t)
	const maxBody = 64 << 20
	cmd := exec.Command(bin, "serve", "--backend", "interp", "--http", haddr, "--grpc", gaddr,
		"--drain-delay", "2s", "--shutdown-timeout", "10s", "--max-body", strconv.Itoa(maxBody), "mlp="+model)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	}()
	pid := cmd.Process.Pid
	base := "http://" + haddr
	url := base + "/v2/models/mlp/infer"
	for i := 0; ; i++ {
		if resp, err := http.Get(base + "/v2/health/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if i > 500 {
			t.Fatalf("server not ready: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	valid := []byte(inferBody([][]float32{{1, 2, 3, 4}}, ""))
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	send := func(c *http.Client, body []byte, hdr ...string) (int, time.Duration, error) {
		req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		began := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			return 0, 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, time.Since(began), nil
	}
	rep := probeReport{MaxBodyBytes: maxBody, FloodStatus: map[int]int{}}
	var idleLat []time.Duration
	for i := 0; i < 300; i++ {
		code, d, err := send(client, valid)
		if err != nil || code != 200 {
			t.Fatalf("warm-up: %d %v", code, err)
		}
		idleLat = append(idleLat, d)
	}
	rep.ValidP99IdleMs = float64(p99(idleLat).Microseconds()) / 1000
	time.Sleep(500 * time.Millisecond)
	idle := procKB(t, pid, "VmRSS")
	rep.IdleRSSMB = float64(idle) / 1024

	// 1. malformed flood, with valid requests beside it
	nums := func(n int) []byte { b := bytes.Repeat([]byte("1,"), n); return b[:len(b)-1] }
	join := func(p ...[]byte) []byte { return bytes.Join(p, nil) }
	mb1, mb16 := nums(1<<19), nums(1<<23)
	bodies := [][]byte{
		[]byte(`{"inputs": [`),
		[]byte(`{"inputs":[{"name":"x","shape":[1,5],"datatype":"FP32","data":[1,2,3,4,5]}]}`),
		[]byte(`{"inputs":[{"name":"x","shape":[50000000,4],"datatype":"FP32","data":[1]}]}`),
		join([]byte(`{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[`), mb1, []byte(`]}]}`)),
		join([]byte(`{"parameters":{"junk":[`), mb1, []byte(`]},"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3]}]}`)),
		[]byte(`{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}]}`),
		[]byte(`{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":99}}]}abc`),
		[]byte(`{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":["a","b","c","d"]}]}`),
		join([]byte(`{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[`), mb16, []byte(`]}]}`)),
		nil, // gRPC: 31-byte ModelInfer claiming [268435456]
	}
	conn, err := grpc.NewClient(gaddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	gc := kservepb.NewGRPCInferenceServiceClient(conn)
	huge := &kservepb.ModelInferRequest{ModelName: "mlp", Inputs: []*kservepb.ModelInferRequest_InferInputTensor{{
		Name: "x", Datatype: "BYTES", Shape: []int64{268435456}, Contents: &kservepb.InferTensorContents{}}}}
	const floodN, workers = 10000, 32
	var next atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	floodDone := make(chan struct{})
	var validLat []time.Duration
	var validFail int
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 10 * time.Second}
			for {
				select {
				case <-floodDone:
					return
				default:
				}
				code, d, err := send(c, valid)
				mu.Lock()
				if err != nil || code != 200 {
					validFail++
				} else {
					validLat = append(validLat, d)
				}
				mu.Unlock()
			}
		}()
	}
	var fw sync.WaitGroup
	for w := 0; w < workers; w++ {
		fw.Add(1)
		go func() {
			defer fw.Done()
			c := &http.Client{Timeout: 30 * time.Second}
			for {
				i := int(next.Add(1)) - 1
				if i >= floodN {
					return
				}
				k := i % 10
				if k == 8 && i%100 != 8 {
					k = 3 // 16 MB bodies only every 100th request
				}
				code := 0
				if k == 9 {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					_, err := gc.ModelInfer(ctx, huge)
					cancel()
					code = -int(grpcStatusCode(err))
				} else {
					var hdr []string
					if k == 6 {
						hdr = []string{headerInferLen, strconv.Itoa(len(bodies[6]) - 3)}
					}
					var err error
					code, _, err = send(c, bodies[k], hdr...)
					if err != nil {
						code = -1000
					}
				}
				mu.Lock()
				rep.FloodStatus[code]++
				mu.Unlock()
			}
		}()
	}
	fw.Wait()
	close(floodDone)
	wg.Wait()
	rep.FloodRequests = floodN
	rep.FloodPeakRSSMB = float64(procKB(t, pid, "VmHWM")) / 1024
	rep.FloodGoalMB = 2*rep.IdleRSSMB + float64(maxBody)/(1<<20)
	rep.ValidDuringFlood, rep.ValidFailedFlood = len(validLat), validFail
	rep.ValidP99FloodMs = float64(p99(validLat).Microseconds()) / 1000
	time.Sleep(5 * time.Second)
	rep.RSSAfterFloodMB = float64(procKB(t, pid, "VmRSS")) / 1024

	// 2. slow connections (headers sent, body trickling) beside valid requests
	for _, n := range []int{1000, 4000, 6000} {
		var conns []net.Conn
		for i := 0; i < n; i++ {
			c, err := net.DialTimeout("tcp", haddr, 2*time.Second)
			if err != nil {
				break
			}
			fmt.Fprintf(c, "POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
			conns = append(conns, c)
		}
		time.Sleep(300 * time.Millisecond)
		r := slowResult{Slow: n, Opened: len(conns), Valid: 50}
		if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
			r.ServerFD = len(fds)
		}
		var lat []time.Duration
		c := &http.Client{Timeout: 3 * time.Second}
		for i := 0; i < r.Valid; i++ {
			code, d, err := send(c, valid)
			if err == nil && code == 200 {
				r.Served++
				lat = append(lat, d)
			}
		}
		c.CloseIdleConnections()
		r.P99Ms = float64(p99(lat).Microseconds()) / 1000
		rep.Slow = append(rep.Slow, r)
		for _, c := range conns {
			c.Close()
		}
		time.Sleep(500 * time.Millisecond)
	}

	// 3. SIGTERM under load
	var sent, ok200, duringDrain, refused, lost atomic.Int64
	var sigAt atomic.Int64
	stop := make(chan struct{})
	var lw sync.WaitGroup
	for w := 0; w < 64; w++ {
		lw.Add(1)
		go func() {
			defer lw.Done()
			c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			for {
				select {
				case <-stop:
					return
				default:
				}
				sent.Add(1)
				code, _, err := send(c, valid)
				switch {
				case err == nil && code == 200:
					ok200.Add(1)
					if sigAt.Load() != 0 {
						duringDrain.Add(1)
					}
				case err != nil && errors.Is(err, syscall.ECONNREFUSED):
					refused.Add(1) // the listener is closed: never read
					time.Sleep(10 * time.Millisecond)
				default:
					lost.Add(1)
					t.Logf("lost %.3fs after SIGTERM: %d %v", time.Since(time.Unix(0, sigAt.Load())).Seconds(), code, err)
				}
			}
		}()
	}
	time.Sleep(time.Second)
	sigAt.Store(time.Now().UnixNano())
	cmd.Process.Signal(syscall.SIGTERM)
	werr := <-exited
	rep.SigtermStopS = time.Since(time.Unix(0, sigAt.Load())).Seconds()
	rep.SigtermExit = cmd.ProcessState.ExitCode()
	time.Sleep(200 * time.Millisecond)
	close(stop)
	lw.Wait()
	rep.SigtermSent, rep.SigtermOK, rep.SigtermDuringDrainOK = sent.Load(), ok200.Load(), duringDrain.Load()
	rep.SigtermRefused, rep.SigtermLost = refused.Load(), lost.Load()
	js, _ := json.MarshalIndent(rep, "", "  ")
	t.Logf("report:\n%s", js)
	if out := os.Getenv("OPTICTL_PROBE_OUT"); out != "" {
		os.WriteFile(out, js, 0o644)
	}
	if werr != nil || rep.SigtermExit != 0 {
		t.Errorf("serve exited %d (%v) after SIGTERM", rep.SigtermExit, werr)
	}
	// the goals are reported, not enforced: this is a measurement
	if rep.SigtermLost != 0 {
		t.Logf("GOAL MISSED: %d requests got no response on SIGTERM (goal 0; see the times above)", rep.SigtermLost)
	}
	if rep.FloodPeakRSSMB > rep.FloodGoalMB {
		t.Logf("GOAL MISSED: peak RSS %.0f MB under the flood is over 2 x idle + body limit = %.0f MB", rep.FloodPeakRSSMB, rep.FloodGoalMB)
	}
}

func grpcStatusCode(err error) uint32 {
	if err == nil {
		return 0
	}
	if s, ok := status.FromError(err); ok {
		return uint32(s.Code())
	}
	return 2
}
