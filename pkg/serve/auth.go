package serve

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// Endpoint groups that a Restriction may cover, in Triton's manner.
const (
	GroupInfer    = "infer"    // HTTP .../infer, gRPC ModelInfer
	GroupMetadata = "metadata" // GET /v2, GET /v2/models/NAME; gRPC ServerMetadata, ModelMetadata
	GroupMetrics  = "metrics"  // GET /metrics
	GroupHealth   = "health"   // /v2/health/*, .../ready; gRPC ServerLive, ServerReady, ModelReady, grpc.health.v1
)

var groups = []string{GroupInfer, GroupMetadata, GroupMetrics, GroupHealth}

// Restriction makes the endpoints of its groups require a header (HTTP) or
// metadata key (gRPC, lower-cased) with a given value: a request without it
// is refused with 401 / UNAUTHENTICATED, one with another value with 403 /
// PERMISSION_DENIED, before its body is read.
type Restriction struct {
	Groups []string
	Header string
	Value  string
}

// ParseRestriction reads GROUP[,GROUP...]=HEADER:VALUE; a VALUE of the
// form env:NAME is read from the environment variable NAME (so the secret
// stays out of the process list).
func ParseRestriction(s string) (Restriction, error) {
	var r Restriction
	gs, rest, ok := strings.Cut(s, "=")
	if !ok {
		return r, fmt.Errorf("serve: restriction %q: want GROUP[,GROUP]=HEADER:VALUE", s)
	}
	for _, g := range strings.Split(gs, ",") {
		g = strings.TrimSpace(g)
		known := false
		for _, k := range groups {
			known = known || g == k
		}
		if !known {
			return r, fmt.Errorf("serve: restriction %q: unknown endpoint group %q (want %s)", s, g, strings.Join(groups, ", "))
		}
		r.Groups = append(r.Groups, g)
	}
	r.Header, r.Value, ok = strings.Cut(rest, ":")
	r.Header = strings.TrimSpace(r.Header)
	if !ok || r.Header == "" || r.Value == "" {
		return r, fmt.Errorf("serve: restriction %q: want GROUP[,GROUP]=HEADER:VALUE", s)
	}
	if name, isEnv := strings.CutPrefix(r.Value, "env:"); isEnv {
		r.Value = os.Getenv(name)
		if r.Value == "" {
			return r, fmt.Errorf("serve: restriction %q: environment variable %s is empty", s, name)
		}
	}
	return r, nil
}

// authorizer maps each restricted group to its one requirement.
type authorizer map[string]Restriction

func newAuthorizer(rs []Restriction) (authorizer, error) {
	a := authorizer{}
	for _, r := range rs {
		for _, g := range r.Groups {
			if _, dup := a[g]; dup {
				return nil, fmt.Errorf("serve: endpoint group %q is restricted twice", g)
			}
			a[g] = r
		}
	}
	return a, nil
}

// check returns nil, or an error with the status that refuses the call.
func (a authorizer) check(group string, values []string) *reqError {
	r, ok := a[group]
	if !ok {
		return nil
	}
	if len(values) == 0 {
		return &reqError{code: codeUnauthenticated, msg: fmt.Sprintf("the %s endpoints need the %s header", group, r.Header)}
	}
	for _, v := range values {
		if subtle.ConstantTimeCompare([]byte(v), []byte(r.Value)) == 1 {
			return nil
		}
	}
	return &reqError{code: codePermissionDenied, msg: fmt.Sprintf("wrong %s for the %s endpoints", r.Header, group)}
}

// httpGroup names the endpoint group of an HTTP request ("" for none).
func httpGroup(r *http.Request) string {
	p := r.URL.Path
	switch {
	case p == "/metrics":
		return GroupMetrics
	case strings.HasPrefix(p, "/v2/health/"):
		return GroupHealth
	case p == "/v2":
		return GroupMetadata
	case strings.HasPrefix(p, "/v2/models/"):
		switch {
		case strings.HasSuffix(p, "/infer"):
			return GroupInfer
		case strings.HasSuffix(p, "/ready"):
			return GroupHealth
		}
		return GroupMetadata
	}
	return ""
}

// restrictHTTP refuses a request that lacks its group's header before the
// handler (and so before the body is read).
func (s *Server) restrictHTTP(h http.Handler) http.Handler {
	if len(s.auth) == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g := httpGroup(r)
		if req, ok := s.auth[g]; ok {
			if err := s.auth.check(g, r.Header.Values(req.Header)); err != nil {
				if err.code == codeUnauthenticated {
					w.Header().Set("WWW-Authenticate", req.Header)
				}
				writeErr(w, statusOf(err), err.msg)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// grpcGroup names the endpoint group of a gRPC method ("" for none).
func grpcGroup(method string) string {
	switch method {
	case "/inference.GRPCInferenceService/ModelInfer", "/inference.GRPCInferenceService/ModelStreamInfer":
		return GroupInfer
	case "/inference.GRPCInferenceService/ServerLive", "/inference.GRPCInferenceService/ServerReady",
		"/inference.GRPCInferenceService/ModelReady", "/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch",
		"/grpc.health.v1.Health/List":
		return GroupHealth
	}
	if strings.HasPrefix(method, "/inference.GRPCInferenceService/") {
		return GroupMetadata // metadata, and the unimplemented config/statistics/repository calls
	}
	return ""
}

// grpcTap refuses a call that lacks its group's metadata key when the
// stream opens, before its message is read (grpc.InTapHandle).
func (s *Server) grpcTap(ctx context.Context, info *tap.Info) (context.Context, error) {
	g := grpcGroup(info.FullMethodName)
	req, ok := s.auth[g]
	if !ok {
		return ctx, nil
	}
	if err := s.auth.check(g, info.Header.Get(strings.ToLower(req.Header))); err != nil {
		c := codes.Unauthenticated
		if err.code == codePermissionDenied {
			c = codes.PermissionDenied
		}
		return ctx, status.Error(c, err.msg)
	}
	return ctx, nil
}

// loadTLS builds the server's TLS configuration: cert and key (PEM), and
// with clientCA, client certificates required and verified against it.
func loadTLS(cert, key, clientCA string) (*tls.Config, error) {
	if cert == "" && key == "" && clientCA == "" {
		return nil, nil
	}
	if cert == "" || key == "" {
		return nil, fmt.Errorf("serve: TLS needs both a certificate and a key")
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("serve: TLS certificate %s / key %s: %w", cert, key, err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if clientCA != "" {
		pem, err := os.ReadFile(clientCA)
		if err != nil {
			return nil, fmt.Errorf("serve: TLS client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("serve: TLS client CA %s holds no PEM certificate", clientCA)
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c, nil
}
