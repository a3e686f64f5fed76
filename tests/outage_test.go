package tests

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/api"
	"github.com/handoff-hq/handoff/codec"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/providers/sandbox"
	"github.com/handoff-hq/handoff/system"
	"github.com/handoff-hq/handoff/workflows"
)

// TestWebhooksWaitOutATemporalOutage stops the Temporal server while an
// order waits for its payment webhook. The endpoint answers 503, the
// sandbox keeps retrying, and once the server is back the retry lands and
// the order completes — with nothing but the webhook to complete it, since
// the order would wait ten minutes before asking the provider.
func TestWebhooksWaitOutATemporalOutage(t *testing.T) {
	selfContained(t)
	bin, err := temporalBinary()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	db := filepath.Join(t.TempDir(), "temporal.db")
	startServer := func() *testsuite.DevServer {
		t.Helper()
		attrs := make([]temporal.SearchAttributeUpdate, 0, len(workflows.SearchAttributes))
		for _, key := range workflows.SearchAttributes {
			attrs = append(attrs, key.ValueSet(""))
		}
		srv, err := testsuite.StartDevServer(context.Background(), testsuite.DevServerOptions{
			ExistingPath:     bin,
			ClientOptions:    &client.Options{HostPort: addr, Namespace: "default", Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))},
			DBFilename:       db,
			LogLevel:         "error",
			SearchAttributes: temporal.NewSearchAttributes(attrs...),
			ExtraArgs:        []string{"--dynamic-config-value", "frontend.enableServerVersionCheck=false"},
			Stdout:           io.Discard, Stderr: io.Discard,
		})
		if err != nil {
			t.Fatalf("start dev server: %v", err)
		}
		return srv
	}
	server := startServer()
	defer func() { _ = server.Stop() }()

	// A client of its own, which outlives the server's restarts.
	c, err := client.Dial(client.Options{HostPort: addr, Namespace: "default", Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
		DataConverter: codec.DataConverter(testEncryption()), FailureConverter: codec.FailureConverter(testEncryption())})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	var apiHandler http.Handler
	apiServer := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { apiHandler.ServeHTTP(w, r) }))
	sb := sandbox.NewServer(sandbox.Options{SettleDelay: 2 * time.Second,
		WebhookURL: "http://" + apiServer.Listener.Addr().String() + "/webhooks", WebhookSecret: testWebhookSecret})
	providerServer := httptest.NewServer(sb)
	defer providerServer.Close()

	defer startWorkers(t, c, providerConfig(providerServer.URL)).Stop()
	st, err := control.New(c, control.Options{DataConverter: codec.DataConverter(testEncryption()), PaymentPollInterval: time.Second, PaymentTimeout: time.Hour, PaymentWebhookWait: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Options{Orders: st, Events: st, Operators: st, Reconciliations: st, APITokens: []string{testToken},
		Ready:    func(context.Context) error { return nil },
		Webhooks: map[string]api.WebhookSource{"payments": {Scheme: system.SchemeStandard, Secrets: []string{testWebhookSecret}}}})
	if err != nil {
		t.Fatal(err)
	}
	apiHandler = srv
	apiServer.Start()
	defer apiServer.Close()

	ctx := context.Background()
	id := "outage-1"
	if _, err := st.PlaceOrder(ctx, order(id), "outage-test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the order to wait for its payment", func() bool {
		s, err := st.Order(ctx, id)
		return err == nil && paymentWaiting(s.State)
	})
	if err := server.Stop(); err != nil {
		t.Logf("stop dev server: %v", err)
	}
	ref := action.OrderKey(id).Step("charge").String()
	waitFor(t, "the payment webhook to be refused while Temporal is down", func() bool {
		d, ok := lastDelivery(sb, ref, "payment.succeeded")
		return ok && d.Attempts >= 2 && !d.Delivered && d.Status == http.StatusServiceUnavailable
	})
	server = startServer()
	waitFor(t, "the order to complete after the restart", func() bool {
		s, err := st.Order(ctx, id)
		return err == nil && s.State.Status == action.StatusCompleted
	})
	d, _ := lastDelivery(sb, ref, "payment.succeeded")
	t.Logf("payment.succeeded delivered after %d attempts", d.Attempts)
	if !d.Delivered || d.Attempts < 3 {
		t.Errorf("delivery = %+v, want delivered after retries", d)
	}
	st2 := sb.State()
	for _, c := range []struct{ system, collection, step string }{{"payments", "charges", "charge"}, {"accounting", "invoices", "invoice"}, {"mail", "messages", "confirmation"}} {
		if got := countFor(st2, c.system, c.collection, id, c.step); got != 1 {
			t.Errorf("%s %s = %d, want 1", c.system, c.collection, got)
		}
	}
}

func lastDelivery(sb *sandbox.Server, ref, typ string) (sandbox.Delivery, bool) {
	var found sandbox.Delivery
	ok := false
	for _, d := range sb.Deliveries() {
		if d.Ref == ref && d.Type == typ {
			found, ok = d, true
		}
	}
	return found, ok
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
