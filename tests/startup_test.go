package tests

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/codec"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/providers/sandbox"
	"github.com/handoff-hq/handoff/worker"
	"github.com/handoff-hq/handoff/workflows"
)

// syncBuffer is a log sink that tests may read while it is written.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestAWorkerStartedBeforeTemporalWaitsForIt starts the workers while no
// Temporal server listens (a deploy, a restart of the cluster): they keep
// trying, with backoff, instead of exiting, and work once Temporal is up.
func TestAWorkerStartedBeforeTemporalWaitsForIt(t *testing.T) {
	selfContained(t)
	hostPort := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	quiet := sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	c, err := client.NewLazyClient(client.Options{HostPort: hostPort, Namespace: "default", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sb := sandbox.NewServer(sandbox.Options{SettleDelay: 10 * time.Millisecond})
	provider := httptest.NewServer(sb)
	defer provider.Close()
	ws := startWorkersLater(t, c, provider.URL)

	var logs syncBuffer
	ws.SetLogger(slog.New(slog.NewTextHandler(&logs, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan error, 1)
	go func() { started <- ws.Start(ctx) }()
	waitFor(t, "the workers to try and wait", func() bool { return strings.Count(logs.String(), "Temporal not ready") >= 2 })
	select {
	case err := <-started:
		t.Fatalf("Start returned while Temporal was down: %v", err)
	default:
	}

	bin, err := temporalBinary()
	if err != nil {
		t.Fatal(err)
	}
	attrs := make([]temporal.SearchAttributeUpdate, 0, len(workflows.SearchAttributes))
	for _, key := range workflows.SearchAttributes {
		attrs = append(attrs, key.ValueSet(""))
	}
	server, err := testsuite.StartDevServer(context.Background(), testsuite.DevServerOptions{
		ExistingPath: bin, ClientOptions: &client.Options{HostPort: hostPort, Namespace: "default", Logger: quiet},
		LogLevel: "error", SearchAttributes: temporal.NewSearchAttributes(attrs...),
		Stdout: io.Discard, Stderr: io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = server.Stop() }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("Start after Temporal came up: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the workers did not start within 60 s of Temporal coming up; logs:\n%s", logs.String())
	}
	defer ws.Stop()

	st, err := control.New(c, control.Options{DataConverter: codec.DataConverter(testEncryption()), PaymentPollInterval: 100 * time.Millisecond, PaymentTimeout: time.Minute, PaymentWebhookWait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PlaceOrder(context.Background(), order("after-startup"), "startup-test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the order to complete", func() bool {
		r, err := st.Order(context.Background(), "after-startup")
		return err == nil && r.State.Status == action.StatusCompleted
	})
}

// startWorkersLater builds the workers for providers at url without
// starting them.
func startWorkersLater(t *testing.T, c client.Client, url string) *worker.Workers {
	t.Helper()
	cfg := providerConfig(url)
	acts, err := worker.NewActivities(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := worker.New(c, acts, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

// TestAnAPIStartedBeforeTemporalServesAndAnswersUnavailable starts `handoff
// api` while no Temporal server listens: it serves at once, stays in its
// load balancer (/readyz 200, saying Temporal is unreachable), and answers
// a placement 503 with Retry-After; once Temporal is up the same placement
// is accepted.
func TestAnAPIStartedBeforeTemporalServesAndAnswersUnavailable(t *testing.T) {
	selfContained(t)
	hostPort := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	api := exec.Command(buildHandoff(t), "api")
	api.Env = append(os.Environ(), "HANDOFF_TEMPORAL_ADDRESS="+hostPort, "HANDOFF_API_ADDR="+addr, "HANDOFF_API_TOKENS="+testToken,
		"HANDOFF_PAYLOAD_KEYS="+testPayloadKey)
	var out syncBuffer
	api.Stdout, api.Stderr = &out, &out
	if err := api.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = api.Process.Kill(); _ = api.Wait() }()
	url := "http://" + addr
	waitFor(t, "the API to serve", func() bool {
		status, _, _, err := sendTo(url, http.MethodGet, "/healthz", nil, "")
		return err == nil && status == http.StatusOK
	})
	if status, _, body, _ := sendTo(url, http.MethodGet, "/readyz", nil, ""); status != http.StatusOK || !strings.Contains(string(body), `"temporal":"unreachable"`) {
		t.Errorf("readyz with Temporal away = %d %s, want 200 saying it is unreachable", status, body)
	}
	if status, _, _, _ := sendTo(url, http.MethodGet, "/readyz?temporal=required", nil, ""); status != http.StatusServiceUnavailable {
		t.Errorf("readyz?temporal=required with Temporal away = %d, want 503", status)
	}
	status, header, body, err := sendTo(url, http.MethodPost, "/v1/orders", order("api-before-temporal"), testToken)
	if err != nil || status != http.StatusServiceUnavailable || header.Get("Retry-After") == "" {
		t.Errorf("place with Temporal away = %d (Retry-After %q) %s %v, want 503 with Retry-After", status, header.Get("Retry-After"), body, err)
	}

	bin, err := temporalBinary()
	if err != nil {
		t.Fatal(err)
	}
	quiet := sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	attrs := make([]temporal.SearchAttributeUpdate, 0, len(workflows.SearchAttributes))
	for _, key := range workflows.SearchAttributes {
		attrs = append(attrs, key.ValueSet(""))
	}
	server, err := testsuite.StartDevServer(context.Background(), testsuite.DevServerOptions{
		ExistingPath: bin, ClientOptions: &client.Options{HostPort: hostPort, Namespace: "default", Logger: quiet},
		LogLevel: "error", SearchAttributes: temporal.NewSearchAttributes(attrs...), Stdout: io.Discard, Stderr: io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = server.Stop() }()
	var last string
	defer func() {
		if t.Failed() {
			t.Logf("last answer to the placement: %s", last)
		}
	}()
	waitFor(t, "the placement to be accepted", func() bool {
		status, _, body, err := sendTo(url, http.MethodPost, "/v1/orders", order("api-before-temporal"), testToken)
		last = fmt.Sprintf("%d %s %v", status, body, err)
		return err == nil && status == http.StatusAccepted
	})
	if status, _, body, _ := sendTo(url, http.MethodGet, "/readyz?temporal=required", nil, ""); status != http.StatusOK {
		t.Errorf("readyz?temporal=required with Temporal up = %d %s", status, body)
	}
}
