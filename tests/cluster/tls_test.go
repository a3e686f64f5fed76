package cluster_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/internal/cluster"
	"github.com/handoff-hq/handoff/workflows"
)

// TestHandoffOnAClusterWithMutualTLS runs handoff against a cluster whose
// frontend requires client certificates (made by the test), connected the
// way the Temporal CLI and SDKs are: TEMPORAL_TLS_* variables, no
// HANDOFF_TEMPORAL_TLS_*. `handoff setup` makes the namespace and search
// attributes through it, and an order completes; a client without a
// certificate is refused.
func TestHandoffOnAClusterWithMutualTLS(t *testing.T) {
	tc := startCluster(t, true)
	files := *tc.TLS
	target := tc.Target()
	target.TLS = nil // not through HANDOFF_TEMPORAL_TLS_*
	f := startFleet(t, target, cluster.FleetOptions{APIs: 1, Workers: 1, Env: []string{
		"TEMPORAL_TLS_CLIENT_CERT_PATH=" + files.Cert,
		"TEMPORAL_TLS_CLIENT_KEY_PATH=" + files.Key,
		"TEMPORAL_TLS_SERVER_CA_CERT_PATH=" + files.CA,
		"TEMPORAL_TLS_SERVER_NAME=localhost",
	}})
	token := envValue(f.Env, "HANDOFF_API_TOKENS")
	p := &placer{urls: f.APIURLs, token: token}
	pctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.place(pctx, 0, order("tls-1")); err != nil {
		t.Fatal(err)
	}
	var st workflows.OrderState
	deadline := time.Now().Add(time.Minute)
	for getJSON(t, f.URL+"/v1/orders/tls-1", token, &st) != http.StatusOK || st.Status != action.StatusCompleted {
		if time.Now().After(deadline) {
			t.Fatalf("order tls-1 is %s after a minute", st.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// handoff setup again changes nothing: the namespace, made by the
	// fleet's first run, is there.
	setup := exec.Command(filepath.Join(bin, "handoff"), "setup")
	setup.Env = f.Env
	out, err := setup.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "namespace default: present") || !strings.Contains(string(out), "search attributes: present") ||
		strings.Contains(string(out), "added") {
		t.Errorf("handoff setup a second time: %v\n%s", err, out)
	}

	// Without a client certificate, the frontend refuses.
	ca, err := os.ReadFile(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	ctx, cancelDial := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelDial()
	c, err := client.DialContext(ctx, client.Options{HostPort: tc.Frontend, Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
		ConnectionOptions: client.ConnectionOptions{TLS: &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}}})
	if err == nil {
		c.Close()
		t.Error("a client without a certificate connected")
	}
	// The same client with the certificate connects: the certificate is
	// what was missing (TLS 1.3 refuses after the handshake, so the error
	// the refused client sees varies: "certificate required", a broken
	// pipe, EOF).
	cert, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err = client.DialContext(ctx, client.Options{HostPort: tc.Frontend, Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
		ConnectionOptions: client.ConnectionOptions{TLS: &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}}})
	if err != nil {
		t.Errorf("the same client with the certificate: %v", err)
	} else {
		c.Close()
	}
}
