package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	goruntime "runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/optictl/optictl/pkg/runtime"
	"github.com/optictl/optictl/pkg/serve"
	"github.com/optictl/optictl/pkg/tune"
)

func init() { commands = append(commands, newServeCmd) }

type serveOptions struct {
	http, grpc string
	backend    string
	threads    int
	instances  int
	maxBatch   int
	queueDelay time.Duration
	preferred  []int
	queueSize  int
	timeout    time.Duration
	maxBody    int64
	cacheBytes int64
	cache      string
	precompute string
	variants   []string
	sloP99     time.Duration
	configFile string
	allowNaN   bool
	version    string
	logJSON    bool
	device     string
	ort        ortFlags
	hard       hardening
}

// hardening holds serve's flags for slow clients, connection limits and
// the drain (issue 18); see registerHardening.
type hardening struct {
	readHeaderTimeout, readTimeout, idleTimeout time.Duration
	maxConnections                              int
	maxInflightBody                             int64
	grpcMaxConnIdle                             time.Duration
	drainDelay, shutdownTimeout                 time.Duration
	cacheHMACKey                                string
	tlsCert, tlsKey, tlsClientCA                string
	restrict                                    []string
}

// envCacheHMACKey holds the shared-cache HMAC key when --cache-hmac-key is
// not given (an environment variable stays out of the process list).
const envCacheHMACKey = "OPTICTL_CACHE_HMAC_KEY"

func (h *hardening) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.DurationVar(&h.readHeaderTimeout, "read-header-timeout", 10*time.Second, "longest a client may take to send the request line and headers")
	f.DurationVar(&h.readTimeout, "read-timeout", 0, "longest a client may take to send a whole request (0 = --read-header-timeout plus --max-body at 1 MiB/s)")
	f.DurationVar(&h.idleTimeout, "idle-timeout", 60*time.Second, "longest a keep-alive connection may wait for its next request")
	f.IntVar(&h.maxConnections, "max-connections", 4096, "open connections per listener (HTTP and gRPC each); more clients wait to be accepted")
	f.Int64Var(&h.maxInflightBody, "max-inflight-body", 0, "request-body bytes held at once over all HTTP requests; more waits briefly, then 429 (0 = --max-body)")
	f.DurationVar(&h.grpcMaxConnIdle, "grpc-max-connection-idle", 5*time.Minute, "close a gRPC connection after this long without RPCs")
	f.DurationVar(&h.drainDelay, "drain-delay", 5*time.Second, "on SIGTERM: report not-ready but keep serving this long, then stop accepting (0 = stop at once)")
	f.DurationVar(&h.shutdownTimeout, "shutdown-timeout", 25*time.Second, "after the drain delay: longest to wait for in-flight requests before closing connections")
	f.StringVar(&h.tlsCert, "tls-cert", "", "serve HTTP and gRPC over TLS with this PEM certificate (needs --tls-key)")
	f.StringVar(&h.tlsKey, "tls-key", "", "PEM private key for --tls-cert")
	f.StringVar(&h.tlsClientCA, "tls-client-ca", "", "require client certificates signed by this PEM CA (mTLS; needs --tls-cert)")
	f.StringArrayVar(&h.restrict, "restrict", nil, "GROUP[,GROUP]=HEADER:VALUE: endpoint groups (infer, metadata, metrics, health) that require a header; VALUE env:NAME reads $NAME (repeatable)")
	f.StringVar(&h.cacheHMACKey, "cache-hmac-key", "", "authenticate shared-cache entries with HMAC-SHA256 under this key; entries that fail are misses (default $"+envCacheHMACKey+")")
}

func (h *hardening) apply(cfg *serve.Config) error {
	// zero takes serve.Config's default (documented on each flag where it
	// is not the flag's own default)
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--read-header-timeout", h.readHeaderTimeout}, {"--read-timeout", h.readTimeout}, {"--idle-timeout", h.idleTimeout},
		{"--grpc-max-connection-idle", h.grpcMaxConnIdle}, {"--drain-delay", h.drainDelay}, {"--shutdown-timeout", h.shutdownTimeout}} {
		if d.v < 0 {
			return usageErr("%s may not be negative", d.name)
		}
	}
	if h.maxConnections < 0 || h.maxInflightBody < 0 {
		return usageErr("--max-connections and --max-inflight-body may not be negative")
	}
	if h.maxInflightBody > 0 && h.maxInflightBody < cfg.MaxBodyBytes {
		return usageErr("--max-inflight-body %d is below --max-body %d: the largest request could never be read", h.maxInflightBody, cfg.MaxBodyBytes)
	}
	cfg.MaxInflightBody = h.maxInflightBody
	cfg.ReadHeaderTimeout, cfg.ReadTimeout, cfg.IdleTimeout = h.readHeaderTimeout, h.readTimeout, h.idleTimeout
	cfg.MaxConnections, cfg.GRPCMaxConnectionIdle = h.maxConnections, h.grpcMaxConnIdle
	cfg.DrainDelay, cfg.ShutdownTimeout = h.drainDelay, h.shutdownTimeout
	if (h.tlsCert == "") != (h.tlsKey == "") || h.tlsClientCA != "" && h.tlsCert == "" {
		return usageErr("--tls-cert and --tls-key go together, and --tls-client-ca needs them")
	}
	cfg.TLSCert, cfg.TLSKey, cfg.TLSClientCA = h.tlsCert, h.tlsKey, h.tlsClientCA
	for _, r := range h.restrict {
		rr, err := serve.ParseRestriction(r)
		if err != nil {
			return usageErr("--restrict: %v", err)
		}
		cfg.Restrict = append(cfg.Restrict, rr)
	}
	key := h.cacheHMACKey
	if key == "" {
		key = os.Getenv(envCacheHMACKey)
	}
	if key != "" {
		if cfg.CacheURL == "" {
			return usageErr("--cache-hmac-key (or $%s) authenticates the shared cache: it needs --cache redis://...", envCacheHMACKey)
		}
		cfg.CacheHMACKey = []byte(key)
	}
	if h.drainDelay == 0 {
		cfg.DrainDelay = -1 // serve.Config: negative is none, zero the default
	}
	return nil
}

func newServeCmd(g *globalOptions) *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve [NAME=]MODEL.onnx ...",
		Short: "Serve models over the KServe v2 protocol (HTTP and gRPC) with batching, caching and variants",
		Long: `Serve one or more models over the KServe v2 / Open Inference Protocol.

A bare path names the model after its file (or its folder for model.onnx).
Requests are validated, looked up in the response cache, routed to a
variant, merged into micro-batches for models with a dynamic batch
dimension, and answered with the variant's name in the "variant" response
parameter and the X-Optictl-Variant header.

Variants (--variant NAME=PATH, repeatable, ordered from most accurate to
fastest) apply to the single served model. With --slo-p99 the router moves
unpinned traffic to the next faster variant when the rolling p99 or the
queue says the SLO is at risk, and back when load falls. A client may ask
for a variant with the request parameter "variant"; it is honoured unless
that variant is overloaded.

Endpoints: /v2/health/live, /v2/health/ready, /v2, /v2/models/NAME[/versions/V][/ready|/infer],
/metrics (Prometheus). gRPC: inference.GRPCInferenceService and grpc.health.v1.

Slow clients: headers must arrive within --read-header-timeout and the
whole request within --read-timeout (by default scaled to --max-body);
--max-connections caps open connections per listener.

Who may call: --tls-cert/--tls-key serve both protocols over TLS,
--tls-client-ca requires client certificates (mTLS), and --restrict makes
endpoint groups require a header (401 when missing, 403 when wrong; gRPC
UNAUTHENTICATED / PERMISSION_DENIED), checked before the body is read.

SIGTERM or SIGINT turns readiness false at once, keeps serving for
--drain-delay, then stops accepting, finishes in-flight requests (at most
--shutdown-timeout) and exits 0.`,
		Example: `  optictl serve ../shared/models/mnist/model.onnx --backend interp
  optictl serve cls=model.onnx --variant int8=model.int8.onnx --slo-p99 10ms
  optictl serve mlp=mlp.onnx --max-batch 32 --max-queue-delay 2ms --instances 2 --cache-bytes 64MiB
  OPTICTL_KEY=s3cret optictl serve m.onnx --tls-cert srv.pem --tls-key srv.key --restrict infer,metadata=X-Api-Key:env:OPTICTL_KEY`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && !cmd.Flags().Changed("config") {
				return usageErr("serve needs at least one model (or --config)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := o.config(args)
			if err != nil {
				return err
			}
			var h slog.Handler = slog.NewTextHandler(g.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})
			if o.logJSON {
				h = slog.NewJSONHandler(g.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})
			}
			cfg.Log = slog.New(h)
			serve.Version = versionString()
			srv, err := serve.New(cfg)
			if err != nil {
				return err
			}
			defer setServeMemoryLimit(srv.Config().MaxInflightBody, cfg.Log)()
			if err := srv.Listen(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			ha, ga := srv.Addrs()
			fmt.Fprintf(g.Stdout, "optictl serve: http %s, grpc %s\n", ha, ga)
			return srv.Serve(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.http, "http", ":8000", "HTTP listen address")
	f.StringVar(&o.grpc, "grpc", ":8001", `gRPC listen address ("off" disables gRPC)`)
	f.StringVar(&o.backend, "backend", "ort", "runtime backend: "+strings.Join(runtime.Names(), ", "))
	f.IntVar(&o.threads, "threads", 1, "intra-op threads per session instance")
	f.StringVar(&o.device, "device", "cpu", "device: "+orList(runtime.Devices())+" (backend permitting; a missing GPU is an error unless --fallback cpu)")
	o.ort.register(cmd, true)
	f.IntVar(&o.instances, "instances", 1, "parallel session instances per model variant")
	f.IntVar(&o.maxBatch, "max-batch", 1, "largest micro-batch for models with a dynamic batch dim (1 = no batching)")
	f.DurationVar(&o.queueDelay, "max-queue-delay", 2*time.Millisecond, "longest a request waits for others to batch with")
	f.IntSliceVar(&o.preferred, "preferred-batch", nil, "batch sizes that are run as soon as they are reached")
	f.IntVar(&o.queueSize, "queue", 256, "bounded queue per variant; when full, requests get 429 / RESOURCE_EXHAUSTED")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "per-request timeout (504 / DEADLINE_EXCEEDED)")
	f.Int64Var(&o.maxBody, "max-body", 64<<20, "largest request body in bytes (413 above)")
	f.Int64Var(&o.cacheBytes, "cache-bytes", 0, "in-process response cache size in bytes (0 = off)")
	f.StringVar(&o.cache, "cache", "", "shared response cache, redis://host:port[/db]")
	f.StringVar(&o.precompute, "precompute", "", "folder of requests (input_K.pb sets) to run at start and cache")
	f.StringArrayVar(&o.variants, "variant", nil, "faster variant NAME=PATH of the served model (repeatable, most accurate first)")
	f.DurationVar(&o.sloP99, "slo-p99", 0, "p99 latency objective that drives variant switching (0 = off)")
	f.StringVar(&o.configFile, "config", "", "JSON file of models and variant ladders ({models: [{name, path, variants: [{name, path}]}], slo_p99}), as optictl tune writes it; --slo-p99 overrides its slo_p99")
	f.BoolVar(&o.allowNaN, "allow-nan", false, "accept NaN/Inf in float inputs")
	f.StringVar(&o.version, "model-version", "1", "version reported for the served models")
	f.BoolVar(&o.logJSON, "log-json", false, "structured logs as JSON lines")
	o.hard.register(cmd)
	return cmd
}

func (o *serveOptions) config(args []string) (serve.Config, error) {
	cfg := serve.Config{
		HTTPAddr: o.http, GRPCAddr: o.grpc, Backend: o.backend, Threads: o.threads,
		Instances: o.instances, MaxBatch: o.maxBatch, MaxQueueDelay: o.queueDelay,
		PreferredBatch: o.preferred, QueueSize: o.queueSize, Timeout: o.timeout,
		MaxBodyBytes: o.maxBody, CacheBytes: o.cacheBytes, CacheURL: o.cache,
		PrecomputeDir: o.precompute, SLOP99: o.sloP99, AllowNaN: o.allowNaN,
	}
	if err := o.hard.apply(&cfg); err != nil {
		return cfg, err
	}
	if _, err := runtime.Get(o.backend); err != nil {
		return cfg, usageErr("--backend: %v", err)
	}
	if err := o.ort.apply([]string{o.backend}, o.device, &cfg.Session); err != nil {
		return cfg, err
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"--instances", o.instances}, {"--max-batch", o.maxBatch}, {"--queue", o.queueSize}} {
		if n.v < 1 {
			return cfg, usageErr("%s must be at least 1", n.name)
		}
	}
	if o.cache != "" && !strings.HasPrefix(o.cache, "redis://") && !strings.HasPrefix(o.cache, "rediss://") {
		return cfg, usageErr("--cache takes redis://host:port (use --cache-bytes for the in-process cache)")
	}
	if len(o.variants) > 0 && len(args) != 1 {
		return cfg, usageErr("--variant applies to a single served model; %d given", len(args))
	}
	for _, a := range args {
		name, path, err := serve.ParseModelArg(a)
		if err != nil {
			return cfg, usageErr("%v", err)
		}
		mc := serve.ModelConfig{Name: name, Version: o.version, Variants: []serve.VariantConfig{{Name: "default", Path: path}}}
		cfg.Models = append(cfg.Models, mc)
	}
	if o.configFile != "" {
		if err := o.applyConfigFile(&cfg); err != nil {
			return cfg, err
		}
	}
	for _, v := range o.variants {
		i := strings.IndexByte(v, '=')
		if i <= 0 || i == len(v)-1 {
			return cfg, usageErr("--variant %q: want NAME=PATH", v)
		}
		cfg.Models[0].Variants = append(cfg.Models[0].Variants, serve.VariantConfig{Name: v[:i], Path: v[i+1:]})
	}
	return cfg, nil
}

// applyConfigFile adds --config's models and ladders to cfg; its slo_p99
// applies unless --slo-p99 was given. The file's backend and threads are
// what tune measured on: they must agree with --backend/--threads when the
// file names them, so a ladder is not served on settings it was not
// measured for without saying so.
func (o *serveOptions) applyConfigFile(cfg *serve.Config) error {
	fc, err := tune.ReadServeConfig(o.configFile)
	if err != nil {
		return usageErr("--config: %v", err)
	}
	if fc.Backend != "" && fc.Backend != o.backend {
		return usageErr("--config %s was measured on backend %s; pass --backend %s", o.configFile, fc.Backend, fc.Backend)
	}
	if fc.Threads != 0 && fc.Threads != o.threads {
		return usageErr("--config %s was measured with %d threads; pass --threads %d", o.configFile, fc.Threads, fc.Threads)
	}
	if o.sloP99 == 0 && fc.SLOP99 != "" {
		d, err := time.ParseDuration(fc.SLOP99)
		if err != nil || d < 0 {
			return usageErr("--config %s: slo_p99 %q is not a duration", o.configFile, fc.SLOP99)
		}
		cfg.SLOP99 = d
	}
	for _, m := range fc.Models {
		mc := serve.ModelConfig{Name: m.Name, Version: o.version, Variants: []serve.VariantConfig{{Name: "default", Path: m.Path}}}
		for _, v := range m.Variants {
			mc.Variants = append(mc.Variants, serve.VariantConfig{Name: v.Name, Path: v.Path})
		}
		cfg.Models = append(cfg.Models, mc)
	}
	if len(o.variants) > 0 && len(cfg.Models) != 1 {
		return usageErr("--variant applies to a single served model; %d given", len(cfg.Models))
	}
	return nil
}

// setServeMemoryLimit bounds the Go heap under a flood of large requests:
// unless GOMEMLIMIT is set, the soft memory limit becomes twice what the
// process holds once its models are loaded plus the in-flight body budget
// (issue 18's goal for a malformed flood: 2 x idle + the body limit). The
// GC works harder near the limit instead of letting the heap double (Go
// caps that work at half the CPU); memory outside Go (ONNX Runtime's) is
// not counted.
// It returns the function that restores the previous limit (serve runs
// inside tests too).
func setServeMemoryLimit(budget int64, log *slog.Logger) (restore func()) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	limit := 2*int64(ms.Sys-ms.HeapReleased) + budget
	old := debug.SetMemoryLimit(limit)
	log.Info("go memory limit", "bytes", limit, "override", "GOMEMLIMIT")
	return func() { debug.SetMemoryLimit(old) }
}
