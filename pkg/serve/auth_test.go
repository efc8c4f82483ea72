package serve

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/optictl/optictl/pkg/serve/kservepb"
)

// testPKI is a CA with a server certificate (for 127.0.0.1) and a client
// certificate, all generated for the test.
type testPKI struct {
	caPEM            []byte
	pool             *x509.CertPool
	ca               *x509.Certificate
	caKey            *ecdsa.PrivateKey
	certFile, keyFil string // server
	caFile           string
	client           tls.Certificate
}

func newPKI(t *testing.T, dir, name string) *testPKI {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &testPKI{caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca: ca, caKey: key, pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.caFile = filepath.Join(dir, name+"-ca.pem")
	os.WriteFile(p.caFile, p.caPEM, 0o600)
	certPEM, keyPEM := p.issue(t, 2, true)
	p.certFile, p.keyFil = filepath.Join(dir, name+"-server.pem"), filepath.Join(dir, name+"-server.key")
	os.WriteFile(p.certFile, certPEM, 0o600)
	os.WriteFile(p.keyFil, keyPEM, 0o600)
	cc, ck := p.issue(t, 3, false)
	if p.client, err = tls.X509KeyPair(cc, ck); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *testPKI) issue(t *testing.T, serial int64, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.Subject.CommonName = "server"
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
}

func httpsClient(roots *x509.CertPool, certs ...tls.Certificate) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}}
}

func TestTLSAndMTLS(t *testing.T) {
	dir := t.TempDir()
	p := writeMLP(t, dir, "mlp.onnx", 1)
	pki := newPKI(t, dir, "good")
	other := newPKI(t, dir, "other")
	body := inferBody([][]float32{{1, 2, 3, 4}}, "")
	try := func(c *http.Client, url string) (int, error) {
		resp, err := c.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	grpcCall := func(addr string, creds credentials.TransportCredentials) error {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = kservepb.NewGRPCInferenceServiceClient(conn).ServerLive(ctx, &kservepb.ServerLiveRequest{})
		return err
	}

	t.Run("tls", func(t *testing.T) {
		ts := start(t, Config{Models: oneModel("mlp", p), TLSCert: pki.certFile, TLSKey: pki.keyFil})
		h, g := ts.Addrs()
		url := "https://" + h + "/v2/models/mlp/infer"
		if code, err := try(httpsClient(pki.pool), url); err != nil || code != 200 {
			t.Fatalf("TLS client: %d %v", code, err)
		}
		if _, err := try(httpsClient(other.pool), url); err == nil {
			t.Fatal("a client that does not trust the server's CA completed the handshake")
		}
		if code, err := try(http.DefaultClient, "http://"+h+"/v2/models/mlp/infer"); err == nil && code == 200 {
			t.Fatal("plain HTTP was served on the TLS port")
		}
		if err := grpcCall(g, credentials.NewTLS(&tls.Config{RootCAs: pki.pool})); err != nil {
			t.Fatalf("gRPC over TLS: %v", err)
		}
		if err := grpcCall(g, insecure.NewCredentials()); err == nil {
			t.Fatal("plaintext gRPC was served on the TLS port")
		}
	})
	t.Run("mtls", func(t *testing.T) {
		ts := start(t, Config{Models: oneModel("mlp", p), TLSCert: pki.certFile, TLSKey: pki.keyFil, TLSClientCA: pki.caFile})
		h, g := ts.Addrs()
		url := "https://" + h + "/v2/models/mlp/infer"
		if code, err := try(httpsClient(pki.pool, pki.client), url); err != nil || code != 200 {
			t.Fatalf("client with a certificate from the CA: %d %v", code, err)
		}
		if _, err := try(httpsClient(pki.pool), url); err == nil {
			t.Fatal("a client without a certificate was served")
		}
		if _, err := try(httpsClient(pki.pool, other.client), url); err == nil {
			t.Fatal("a client whose certificate another CA signed was served")
		}
		if err := grpcCall(g, credentials.NewTLS(&tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.client}})); err != nil {
			t.Fatalf("gRPC with a client certificate: %v", err)
		}
		if err := grpcCall(g, credentials.NewTLS(&tls.Config{RootCAs: pki.pool})); err == nil {
			t.Fatal("gRPC without a client certificate was served")
		}
	})
	t.Run("bad files", func(t *testing.T) {
		for _, c := range []Config{
			{TLSCert: pki.certFile},
			{TLSCert: pki.certFile, TLSKey: filepath.Join(dir, "none.key")},
			{TLSCert: pki.certFile, TLSKey: pki.keyFil, TLSClientCA: p}, // not PEM
		} {
			c.Models, c.Backend, c.Log = oneModel("mlp", p), "interp", nil
			if _, err := New(c); err == nil || !strings.Contains(err.Error(), "TLS") {
				t.Errorf("%+v: %v, want a TLS error", c, err)
			}
		}
	})
}

func TestRestrictedEndpointGroups(t *testing.T) {
	p := writeMLP(t, t.TempDir(), "mlp.onnx", 1)
	t.Setenv("TEST_META_KEY", "meta-secret")
	infer, err := ParseRestriction("infer=X-Api-Key:infer-secret")
	if err != nil {
		t.Fatal(err)
	}
	meta, err := ParseRestriction("metadata,metrics=X-Meta-Key:env:TEST_META_KEY")
	if err != nil || meta.Value != "meta-secret" {
		t.Fatalf("%+v %v", meta, err)
	}
	ts := start(t, Config{Models: oneModel("mlp", p), Restrict: []Restriction{infer, meta}})
	good := inferBody([][]float32{{1, 2, 3, 4}}, "")
	do := func(method, path, body string, hdr ...string) (int, string) {
		req, _ := http.NewRequest(method, ts.base+path, strings.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		name, method, path, body string
		hdr                      []string
		code                     int
	}{
		{"infer without key", "POST", "/v2/models/mlp/infer", good, nil, 401},
		{"infer with wrong key", "POST", "/v2/models/mlp/infer", good, []string{"X-Api-Key", "guess"}, 403},
		{"malformed infer without key: refused before decoding", "POST", "/v2/models/mlp/infer", "{not json", nil, 401},
		{"infer with key", "POST", "/v2/models/mlp/infer", good, []string{"X-Api-Key", "infer-secret"}, 200},
		{"infer key does not open metadata", "GET", "/v2/models/mlp", "", []string{"X-Api-Key", "infer-secret"}, 401},
		{"metadata with key", "GET", "/v2/models/mlp", "", []string{"X-Meta-Key", "meta-secret"}, 200},
		{"server metadata wrong key", "GET", "/v2", "", []string{"X-Meta-Key", "infer-secret"}, 403},
		{"metrics without key", "GET", "/metrics", "", nil, 401},
		{"metrics with key", "GET", "/metrics", "", []string{"X-Meta-Key", "meta-secret"}, 200},
		{"health is open", "GET", "/v2/health/ready", "", nil, 200},
		{"model ready is health", "GET", "/v2/models/mlp/ready", "", nil, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := ts.inferRead.Load()
			code, b := do(c.method, c.path, c.body, c.hdr...)
			if code != c.code {
				t.Fatalf("%d %s, want %d", code, b, c.code)
			}
			if code == 401 || code == 403 {
				if ts.inferRead.Load() != before {
					t.Fatal("a refused request reached the infer handler")
				}
			}
		})
	}

	conn, err := grpc.NewClient(ts.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := kservepb.NewGRPCInferenceServiceClient(conn)
	req := &kservepb.ModelInferRequest{ModelName: "mlp", Inputs: []*kservepb.ModelInferRequest_InferInputTensor{{
		Name: "x", Datatype: "FP32", Shape: []int64{1, 4}, Contents: &kservepb.InferTensorContents{Fp32Contents: []float32{1, 2, 3, 4}}}}}
	ctx := context.Background()
	with := func(k, v string) context.Context { return metadata.AppendToOutgoingContext(ctx, k, v) }
	for _, g := range []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"infer without key", func() error { _, err := c.ModelInfer(ctx, req); return err }, codes.Unauthenticated},
		{"infer with wrong key", func() error { _, err := c.ModelInfer(with("x-api-key", "guess"), req); return err }, codes.PermissionDenied},
		{"infer with key", func() error { _, err := c.ModelInfer(with("x-api-key", "infer-secret"), req); return err }, codes.OK},
		{"model metadata without key", func() error {
			_, err := c.ModelMetadata(ctx, &kservepb.ModelMetadataRequest{Name: "mlp"})
			return err
		}, codes.Unauthenticated},
		{"model metadata with key", func() error {
			_, err := c.ModelMetadata(with("x-meta-key", "meta-secret"), &kservepb.ModelMetadataRequest{Name: "mlp"})
			return err
		}, codes.OK},
		{"health is open", func() error {
			_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			return err
		}, codes.OK},
		{"server live is open", func() error { _, err := c.ServerLive(ctx, &kservepb.ServerLiveRequest{}); return err }, codes.OK},
	} {
		t.Run("grpc "+g.name, func(t *testing.T) {
			if err := g.call(); status.Code(err) != g.want {
				t.Fatalf("got %v, want %v", err, g.want)
			}
		})
	}
}

func TestParseRestriction(t *testing.T) {
	t.Setenv("EMPTY_KEY", "")
	for _, c := range []struct {
		in, err string
	}{
		{"infer=X-Api-Key:s", ""},
		{"infer,health=X-Api-Key:s", ""},
		{"inference=X-Api-Key:s", "unknown endpoint group"},
		{"infer", "want GROUP"},
		{"infer=X-Api-Key", "want GROUP"},
		{"infer=:s", "want GROUP"},
		{"infer=X-Api-Key:env:EMPTY_KEY", "is empty"},
	} {
		_, err := ParseRestriction(c.in)
		if (c.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("%q: %v, want %q", c.in, err, c.err)
		}
	}
	if _, err := newAuthorizer([]Restriction{{Groups: []string{"infer"}}, {Groups: []string{"infer"}}}); err == nil {
		t.Error("a group restricted twice was accepted")
	}
}
