package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/serve/kservepb"
)

// ModelConfig names one served model and its variants. Variants[0] is the
// most accurate (the model itself); later ones are faster.
type ModelConfig struct {
	Name     string
	Version  string
	Variants []VariantConfig
}

// VariantConfig is one model file.
type VariantConfig struct {
	Name string
	Path string
}

// Config configures a Server. Zero values get the defaults in Defaults.
type Config struct {
	Models   []ModelConfig
	HTTPAddr string // ":8000"
	GRPCAddr string // ":8001"; "off" disables gRPC
	Backend  string // "ort" or "interp"
	Threads  int    // per session
	// Session is the base of every session's options (device, ORT
	// optimization level, fallback, provider options); Threads overrides
	// its Threads.
	Session        runtime.Options
	Instances      int // sessions per variant
	MaxBatch       int // 1 disables batching
	MaxQueueDelay  time.Duration
	PreferredBatch []int
	QueueSize      int           // per variant
	Timeout        time.Duration // per request
	MaxBodyBytes   int64
	// MaxInflightBody bounds the request-body bytes held at once, over all
	// HTTP requests (default and minimum: MaxBodyBytes): a
	// request that finds no room within a short wait gets 429.
	MaxInflightBody int64
	CacheBytes      int64  // in-process LRU; 0 disables unless CacheURL is set
	CacheURL        string // redis://host:port for a shared cache
	// CacheHMACKey authenticates shared-cache entries (see RedisCache);
	// empty: entries in Redis are trusted as they are.
	CacheHMACKey  []byte
	PrecomputeDir string
	SLOP99        time.Duration // 0: no load-aware switching
	AllowNaN      bool

	// Slow clients. ReadHeaderTimeout bounds the request line and
	// headers; ReadTimeout the whole request (0: ReadHeaderTimeout plus
	// MaxBodyBytes at MinBodyRate, so the largest allowed body sent at the
	// slowest honest rate fits); IdleTimeout a keep-alive connection
	// waiting for its next request. MaxConnections caps open connections
	// per listener (HTTP and gRPC each); further clients wait in the
	// kernel's accept queue. GRPCMaxConnectionIdle closes (GOAWAY) a gRPC
	// connection without RPCs for that long.
	ReadHeaderTimeout     time.Duration // 10s
	ReadTimeout           time.Duration // 0: auto (see above)
	IdleTimeout           time.Duration // 60s
	MaxConnections        int           // 4096
	GRPCMaxConnectionIdle time.Duration // 5m
	// Drain. When Serve's context ends, readiness turns false at once, the
	// server keeps accepting and serving for DrainDelay (so load balancers
	// see not-ready and stop sending), then stops accepting, finishes
	// in-flight requests and closes idle connections; ShutdownTimeout
	// bounds that last part (then connections are closed hard).
	DrainDelay      time.Duration // 5s; negative: none
	ShutdownTimeout time.Duration // 25s
	// Who may call. TLSCert and TLSKey (PEM files) turn on TLS for HTTP
	// and gRPC; TLSClientCA also requires client certificates signed by
	// it (mTLS). Restrict makes endpoint groups require a header.
	TLSCert, TLSKey, TLSClientCA string
	Restrict                     []Restriction
	Log                          *slog.Logger
	// Open overrides how sessions are opened (tests); nil uses runtime.Open.
	Open func(backend string, m *graph.Model, opts runtime.Options) (runtime.Session, error)
}

// Defaults fills zero fields.
func (c *Config) Defaults() {
	if c.HTTPAddr == "" {
		c.HTTPAddr = ":8000"
	}
	if c.GRPCAddr == "" {
		c.GRPCAddr = ":8001"
	}
	if c.Backend == "" {
		c.Backend = "ort"
	}
	if c.Instances <= 0 {
		c.Instances = 1
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 1
	}
	if c.MaxQueueDelay <= 0 {
		c.MaxQueueDelay = 2 * time.Millisecond
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 256
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 64 << 20
	}
	if c.MaxInflightBody <= 0 {
		c.MaxInflightBody = c.MaxBodyBytes
	}
	c.MaxInflightBody = max(c.MaxInflightBody, c.MaxBodyBytes)
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = 10 * time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = c.ReadHeaderTimeout + time.Duration(float64(c.MaxBodyBytes)/MinBodyRate*float64(time.Second))
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = 4096
	}
	if c.GRPCMaxConnectionIdle <= 0 {
		c.GRPCMaxConnectionIdle = 5 * time.Minute
	}
	if c.DrainDelay == 0 {
		c.DrainDelay = 5 * time.Second
	}
	if c.DrainDelay < 0 {
		c.DrainDelay = 0
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 25 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Open == nil {
		c.Open = runtime.Open
	}
}

// MinBodyRate (bytes per second) is the slowest body upload the automatic
// ReadTimeout allows for: 64 MiB of body get 64 s on top of the header
// timeout.
const MinBodyRate = 1 << 20

// ParseModelArg parses "name=path" or a bare path (named after the file).
func ParseModelArg(s string) (name, path string, err error) {
	if i := strings.IndexByte(s, '='); i > 0 {
		name, path = s[:i], s[i+1:]
	} else {
		path = s
		base := filepath.Base(s)
		name = strings.TrimSuffix(base, filepath.Ext(base))
		if name == "model" { // ../models/ppocr-cls/model.onnx -> ppocr-cls
			name = filepath.Base(filepath.Dir(s))
		}
	}
	if name == "" || path == "" {
		return "", "", fmt.Errorf("serve: model %q: want NAME=PATH or PATH", s)
	}
	if strings.ContainsAny(name, "/ ?#") {
		return "", "", fmt.Errorf("serve: model name %q may not contain '/', spaces, '?' or '#'", name)
	}
	return name, path, nil
}

// Server is a running inference server.
type Server struct {
	cfg     Config
	models  map[string]*servedModel
	order   []string
	metrics *metrics
	cache   Cache
	ready   atomic.Bool
	closing atomic.Bool
	// draining: Serve's context ended and the drain delay runs: not
	// ready, but still serving; responses ask to close the connection.
	draining atomic.Bool
	// inferRead counts HTTP infer requests whose handler started (the
	// server read them); tests compare it with the responses clients got.
	inferRead atomic.Int64
	http      *http.Server
	grpc      *grpc.Server
	health    *health.Server
	httpLn    net.Listener
	grpcLn    net.Listener
	inflight  sync.WaitGroup
	// active counts requests inside infer (queued or running).
	active     atomic.Int64
	stopRouter chan struct{}
	routerWG   sync.WaitGroup
	tls        *tls.Config // nil: plain TCP
	bodies     *byteBudget
	auth       authorizer
	// router: load-aware switching is on (SLOP99 > 0), so requests feed
	// their variant's latency window.
	router bool
}

type servedModel struct {
	name, version string
	variants      []*variant
	active        atomic.Int32 // index of the variant unpinned traffic goes to
	calmSince     time.Time
	m             modelMetrics
	inputNames    []string // variants[0]'s inputs, in model order
}

// New loads every model and variant, opens Instances sessions of each,
// warms them up and fills the cache from PrecomputeDir. It does not listen.
func New(cfg Config) (*Server, error) {
	cfg.Defaults()
	if len(cfg.Models) == 0 {
		return nil, fmt.Errorf("serve: no models to serve")
	}
	s := &Server{cfg: cfg, models: map[string]*servedModel{}, metrics: newMetrics(), stopRouter: make(chan struct{}), router: cfg.SLOP99 > 0}
	s.bodies = newByteBudget(cfg.MaxInflightBody)
	var err error
	if s.tls, err = loadTLS(cfg.TLSCert, cfg.TLSKey, cfg.TLSClientCA); err != nil {
		return nil, err
	}
	if s.auth, err = newAuthorizer(cfg.Restrict); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			s.closeModels()
		}
	}()
	switch {
	case cfg.CacheURL != "":
		rc, err := NewRedis(cfg.CacheURL, time.Hour)
		if err != nil {
			return nil, err
		}
		if len(cfg.CacheHMACKey) > 0 {
			rc.SetHMACKey(cfg.CacheHMACKey)
		} else {
			cfg.Log.Warn("shared cache entries are not authenticated: anyone who can write to Redis can plant answers (set --cache-hmac-key or OPTICTL_CACHE_HMAC_KEY)", "cache", cfg.CacheURL)
		}
		s.metrics.cacheRejected(rc.Rejected)
		s.cache = rc
	case cfg.CacheBytes > 0:
		s.cache = NewLRU(cfg.CacheBytes)
	}
	for _, mc := range cfg.Models {
		if _, dup := s.models[mc.Name]; dup {
			return nil, fmt.Errorf("serve: model name %q given twice", mc.Name)
		}
		if mc.Version == "" {
			mc.Version = "1"
		}
		if len(mc.Variants) == 0 {
			return nil, fmt.Errorf("serve: model %q has no model file", mc.Name)
		}
		sm := &servedModel{name: mc.Name, version: mc.Version}
		sm.m = s.metrics.forModel(sm.name, sm.version)
		s.models[mc.Name] = sm
		s.order = append(s.order, mc.Name)
		for _, vc := range mc.Variants {
			v, err := s.openVariant(sm, vc)
			if err != nil {
				return nil, err
			}
			if len(sm.variants) > 0 && !sameIO(sm.variants[0], v) {
				return nil, fmt.Errorf("serve: model %q: variant %q has different inputs/outputs than %q", mc.Name, v.name, sm.variants[0].name)
			}
			sm.variants = append(sm.variants, v)
		}
		for _, io := range sm.variants[0].inputs {
			sm.inputNames = append(sm.inputNames, io.Name)
		}
		s.setActive(sm, 0, "start")
	}
	for _, sm := range s.models {
		for _, v := range sm.variants {
			if err := s.warmup(v); err != nil {
				return nil, err
			}
			v.start()
		}
	}
	if cfg.PrecomputeDir != "" {
		if s.cache == nil {
			return nil, fmt.Errorf("serve: --precompute needs a cache (--cache-bytes or --cache redis://...)")
		}
		if err := s.precompute(cfg.PrecomputeDir); err != nil {
			return nil, err
		}
	}
	ok = true
	return s, nil
}

func sameIO(a, b *variant) bool {
	if len(a.inputs) != len(b.inputs) || len(a.outputs) != len(b.outputs) {
		return false
	}
	for i := range a.inputs {
		if a.inputs[i].Name != b.inputs[i].Name {
			return false
		}
	}
	for i := range a.outputs {
		if a.outputs[i].Name != b.outputs[i].Name {
			return false
		}
	}
	return true
}

func (s *Server) openVariant(sm *servedModel, vc VariantConfig) (*variant, error) {
	m, err := graph.Load(vc.Path)
	if err != nil {
		return nil, fmt.Errorf("serve: model %q variant %q: %w", sm.name, vc.Name, err)
	}
	v := &variant{name: vc.Name, path: vc.Path, model: m, srv: s, parent: sm,
		queue: make(chan *job, s.cfg.QueueSize), lat: &latWindow{keep: 2 * time.Second}}
	for i := 0; i < s.cfg.Instances; i++ {
		opts := s.cfg.Session
		opts.Threads = s.cfg.Threads
		sess, err := s.cfg.Open(s.cfg.Backend, m, opts)
		if err != nil {
			for _, o := range v.sessions {
				o.Close()
			}
			return nil, fmt.Errorf("serve: model %q variant %q: %w", sm.name, vc.Name, err)
		}
		if i == 0 && strings.Contains(sess.Device(), "fallback") {
			s.cfg.Log.Warn("device fallback", "model", sm.name, "variant", vc.Name, "device", sess.Device())
		}
		v.sessions = append(v.sessions, sess)
	}
	v.inputs = v.sessions[0].Inputs()
	v.outputs = v.sessions[0].Outputs()
	v.batchable = isBatchable(v.inputs, v.outputs)
	v.direct = !v.batchable || s.cfg.MaxBatch <= 1
	v.m = s.metrics.forVariant(sm.name, sm.version, vc.Name)
	return v, nil
}

// warmup runs every instance once per configured batch size on zeros.
func (s *Server) warmup(v *variant) error {
	sizes := []int64{1}
	if v.batchable && s.cfg.MaxBatch > 1 {
		sizes = append(sizes, int64(s.cfg.MaxBatch))
		for _, p := range s.cfg.PreferredBatch {
			sizes = append(sizes, int64(p))
		}
	}
	for _, b := range sizes {
		in := make([]*runtime.Tensor, len(v.inputs))
		for i, info := range v.inputs {
			shape := make([]int64, len(info.Shape))
			for k, d := range info.Shape {
				switch {
				case d >= 0:
					shape[k] = d
				case k == 0:
					shape[k] = b
				default:
					shape[k] = 1
				}
			}
			in[i] = runtime.NewTensor(info.DType, shape)
		}
		for _, sess := range v.sessions {
			if _, err := sess.Run(context.Background(), in); err != nil {
				return fmt.Errorf("serve: warm-up of %q variant %q (batch %d): %w", v.parent.name, v.name, b, err)
			}
		}
	}
	s.cfg.Log.Info("warmed up", "model", v.parent.name, "variant", v.name, "instances", len(v.sessions), "batchable", v.batchable)
	return nil
}

func (s *Server) closeModels() {
	for _, sm := range s.models {
		for _, v := range sm.variants {
			for _, sess := range v.sessions {
				sess.Close()
			}
		}
	}
	if s.cache != nil {
		s.cache.Close()
	}
}

// Listen binds the HTTP and gRPC ports (":0" picks free ones; see Addrs).
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("serve: http: %w", err)
	}
	s.httpLn = ln
	if s.cfg.GRPCAddr != "off" {
		gl, err := net.Listen("tcp", s.cfg.GRPCAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("serve: grpc: %w", err)
		}
		s.grpcLn = gl
	}
	return nil
}

// Addrs are the bound HTTP and gRPC addresses.
func (s *Server) Addrs() (httpAddr, grpcAddr string) {
	if s.httpLn != nil {
		httpAddr = s.httpLn.Addr().String()
	}
	if s.grpcLn != nil {
		grpcAddr = s.grpcLn.Addr().String()
	}
	return
}

// Serve runs until ctx is cancelled, then shuts down gracefully: it stops
// accepting, reports not-ready, lets in-flight requests finish, and returns nil.
func (s *Server) Serve(ctx context.Context) error {
	if s.httpLn == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	c := s.cfg
	var httpTLS *tls.Config
	if s.tls != nil {
		httpTLS = s.tls.Clone() // net/http adds its ALPN protocols to it
	}
	s.http = &http.Server{Handler: s.drainHeader(s.restrictHTTP(s.Handler())), TLSConfig: httpTLS,
		ReadHeaderTimeout: c.ReadHeaderTimeout, ReadTimeout: c.ReadTimeout, IdleTimeout: c.IdleTimeout,
		// a response must be written within the request's own budget: a
		// client that never reads its answer cannot hold the connection
		WriteTimeout: c.ReadTimeout + c.Timeout + 10*time.Second,
		ErrorLog:     slog.NewLogLogger(c.Log.Handler(), slog.LevelDebug)}
	errc := make(chan error, 2)
	httpLn := limitListener(s.httpLn, c.MaxConnections)
	go func() {
		serve := s.http.Serve
		if s.tls != nil {
			serve = func(l net.Listener) error { return s.http.ServeTLS(l, "", "") }
		}
		if err := serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	if s.grpcLn != nil {
		opts := []grpc.ServerOption{grpc.InTapHandle(s.grpcTap), grpc.ForceServerCodecV2(newInferCodec())}
		if s.tls != nil {
			opts = append(opts, grpc.Creds(credentials.NewTLS(s.tls.Clone())))
		}
		s.grpc = grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(int(c.MaxBodyBytes)),
			grpc.ConnectionTimeout(c.ReadHeaderTimeout),
			grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
			grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: c.GRPCMaxConnectionIdle, Time: time.Minute, Timeout: 20 * time.Second}))...)
		kservepb.RegisterGRPCInferenceServiceServer(s.grpc, &grpcService{s: s})
		s.health = health.NewServer()
		healthpb.RegisterHealthServer(s.grpc, s.health)
		s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		s.health.SetServingStatus("inference.GRPCInferenceService", healthpb.HealthCheckResponse_SERVING)
		grpcLn := limitListener(s.grpcLn, c.MaxConnections)
		go func() {
			if err := s.grpc.Serve(grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				errc <- err
			}
		}()
	}
	s.startRouter()
	s.ready.Store(true)
	h, g := s.Addrs()
	s.cfg.Log.Info("serving", "http", h, "grpc", g, "models", strings.Join(s.order, ","))
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	s.shutdown()
	return runErr
}

// shutdown drains (see Config.DrainDelay) and stops.
func (s *Server) shutdown() {
	start := time.Now()
	s.draining.Store(true)
	s.ready.Store(false)
	if s.health != nil {
		s.health.Shutdown() // every service NOT_SERVING
	}
	if d := s.cfg.DrainDelay; d > 0 && (s.http != nil || s.grpc != nil) {
		s.cfg.Log.Info("draining: not ready; still serving", "drain_delay", d)
		time.Sleep(d)
	}
	s.cfg.Log.Info("shutting down: no new connections; finishing in-flight requests", "shutdown_timeout", s.cfg.ShutdownTimeout)
	s.closing.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	if s.http != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.http.Shutdown(ctx); err != nil {
				s.cfg.Log.Warn("shutdown timeout: closing HTTP connections", "err", err)
				s.http.Close()
			}
		}()
	}
	if s.grpc != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan struct{})
			go func() { s.grpc.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-ctx.Done():
				s.cfg.Log.Warn("shutdown timeout: closing gRPC connections")
				s.grpc.Stop()
				<-done
			}
		}()
	}
	wg.Wait()
	flight := make(chan struct{})
	go func() { s.inflight.Wait(); close(flight) }()
	select {
	case <-flight:
	case <-ctx.Done():
		// Requests still running have lost their connections; their
		// sessions stop at their own deadlines (Config.Timeout).
		// Their sessions stay open (closing one under a running request
		// is not safe); the process is about to exit.
		s.cfg.Log.Warn("shutdown timeout: requests still running; sessions left open", "active", s.active.Load(), "after", time.Since(start).Round(time.Millisecond))
		close(s.stopRouter)
		s.routerWG.Wait()
		return
	}
	close(s.stopRouter)
	s.routerWG.Wait()
	for _, sm := range s.models {
		for _, v := range sm.variants {
			v.stop()
		}
	}
	if s.cache != nil {
		s.cache.Close()
	}
	s.cfg.Log.Info("stopped", "infer_requests_read", s.inferRead.Load())
}

// Config is the server's configuration with its defaults filled in.
func (s *Server) Config() Config { return s.cfg }

// Ready reports whether warm-up finished and the server accepts requests.
func (s *Server) Ready() bool { return s.ready.Load() }

func (s *Server) model(name, version string) (*servedModel, error) {
	sm, ok := s.models[name]
	if !ok {
		return nil, &reqError{code: codeNotFound, msg: fmt.Sprintf("unknown model %q (serving: %s)", name, strings.Join(s.order, ", "))}
	}
	if version != "" && version != sm.version {
		return nil, &reqError{code: codeNotFound, msg: fmt.Sprintf("model %q has no version %q (serving version %q)", name, version, sm.version)}
	}
	return sm, nil
}
