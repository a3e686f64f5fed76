package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/system"
	"github.com/handoff-hq/handoff/webhooks"
)

// seriesCount counts every metric series the registry holds.
func seriesCount(t *testing.T, reg *prometheus.Registry) int {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range families {
		n += len(f.GetMetric())
	}
	return n
}

func TestUnauthenticatedInputAddsNoMetricSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := New(Options{Orders: &fakeOrders{}, Events: &fakeEvents{}, Operators: &fakeOperators{}, Reconciliations: &fakeReconciliations{},
		APITokens: []string{token}, Ready: func(context.Context) error { return nil }, Registry: reg,
		Webhooks: map[string]WebhookSource{"payments": {Scheme: system.SchemeStandard, Secrets: []string{webhookSecret}}}})
	if err != nil {
		t.Fatal(err)
	}
	// One of each kind first, so that the series they need exist.
	do(s, http.MethodPost, "/webhooks/warm-up", "{}", "")
	do(s, "BREW", "/v1/orders", "", "")
	do(s, http.MethodGet, "/no/such/route", "", "")
	before := seriesCount(t, reg)

	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 10_000 {
		system := fmt.Sprintf("s%x", rng.Uint64())
		if rec := do(s, http.MethodPost, "/webhooks/"+system, "{}", ""); rec.Code != http.StatusNotFound {
			t.Fatalf("POST /webhooks/%s: %d, want 404", system, rec.Code)
		}
		if i%100 == 0 {
			do(s, fmt.Sprintf("M%d", i), "/v1/orders", "", "")
			do(s, http.MethodGet, fmt.Sprintf("/random/%d", i), "", "")
		}
	}
	if after := seriesCount(t, reg); after != before {
		t.Errorf("metric series grew from %d to %d on requests with chosen paths and methods", before, after)
	}
}

func TestWebhookPathOfInvalidUTF8IsNotFound(t *testing.T) {
	s := newWebhookServer(t, &fakeEvents{})
	rec := do(s, http.MethodPost, "/webhooks/%FF", "{}", "")
	if rec.Code != http.StatusNotFound || !strings.Contains(rec.Header().Get("Content-Type"), "problem+json") {
		t.Errorf("POST /webhooks/%%FF: %d %s, want a 404 problem", rec.Code, rec.Body)
	}
}

// panicking is an Orders whose read panics.
type panicking struct{ fakeOrders }

func (panicking) Order(context.Context, string) (control.OrderRead, error) { panic("boom") }

func TestAPanicBecomesALogged500Problem(t *testing.T) {
	var logs bytes.Buffer
	s, err := New(Options{Orders: &panicking{}, Events: &fakeEvents{}, Operators: &fakeOperators{}, Reconciliations: &fakeReconciliations{},
		APITokens: []string{token}, Ready: func(context.Context) error { return nil },
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	rec := do(s, http.MethodGet, "/v1/orders/A-1", "", "Bearer "+token)
	var p Problem
	if rec.Code != http.StatusInternalServerError || json.Unmarshal(rec.Body.Bytes(), &p) != nil || p.Type != problemTypePrefix+"internal" {
		t.Errorf("answer = %d %s, want a 500 problem", rec.Code, rec.Body)
	}
	if !strings.Contains(logs.String(), "handler panicked") || !strings.Contains(logs.String(), `"status":500`) {
		t.Errorf("logs = %s, want the panic logged and the request counted as 500", logs.String())
	}
}

// slowOrders answers reads only when the caller's context ends.
type slowOrders struct{ fakeOrders }

func (slowOrders) Order(ctx context.Context, _ string) (control.OrderRead, error) {
	<-ctx.Done()
	return control.OrderRead{}, fmt.Errorf("read order: %w", ctx.Err())
}

func TestAClientThatGivesUpIsNotAServerError(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	s, err := New(Options{Orders: &slowOrders{}, Events: &fakeEvents{}, Operators: &fakeOperators{}, Reconciliations: &fakeReconciliations{},
		APITokens: []string{token}, Ready: func(context.Context) error { return nil }, Registry: reg,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/v1/orders/A-1", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	s.ServeHTTP(httptest.NewRecorder(), req)
	if strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Errorf("logs = %s, want no error for a client that went away", logs.String())
	}
	families, _ := reg.Gather()
	var codes []string
	for _, f := range families {
		if f.GetName() != "handoff_http_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "code" {
					codes = append(codes, l.GetValue())
				}
			}
		}
	}
	if len(codes) != 1 || codes[0] != "499" {
		t.Errorf("counted codes = %v, want [499]", codes)
	}
}

func TestForeignStripeEventsAreAcknowledgedAndCounted(t *testing.T) {
	const secret = "whsec_stripe_test_secret"
	reg := prometheus.NewRegistry()
	events := &fakeEvents{}
	s, err := New(Options{Orders: &fakeOrders{}, Events: events, Operators: &fakeOperators{}, Reconciliations: &fakeReconciliations{},
		APITokens: []string{token}, Ready: func(context.Context) error { return nil }, Registry: reg,
		Webhooks: map[string]WebhookSource{"payments": {Scheme: system.SchemeStripe, Secrets: []string{secret}}}})
	if err != nil {
		t.Fatal(err)
	}
	// A genuine event about a PaymentIntent another application made.
	body := `{"id":"evt_1","type":"payment_intent.succeeded","created":1700000000,"data":{"object":{"id":"pi_other","metadata":{"shop_order":"77"}}}}`
	now := time.Now().Unix()
	req := httptest.NewRequest(http.MethodPost, "/webhooks/payments", strings.NewReader(body))
	req.Header.Set("Stripe-Signature", webhooks.SignStripe(secret, now, []byte(body)))
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusAccepted || !strings.Contains(rec.Body.String(), `"ignored"`) {
		t.Errorf("answer = %d %s, want 202 ignored", rec.Code, rec.Body)
	}
	if len(events.got) != 0 {
		t.Errorf("handed on %d events, want none", len(events.got))
	}
	if got := counterValue(t, reg, "handoff_webhooks_total", map[string]string{"system": "payments", "result": "foreign"}); got != 1 {
		t.Errorf("foreign events counted = %v, want 1", got)
	}
}

func TestALatePaymentIsAcceptedAndCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	events := &fakeEvents{err: fmt.Errorf("deliver: %w", control.ErrLatePayment)}
	s, err := New(Options{Orders: &fakeOrders{}, Events: events, Operators: &fakeOperators{}, Reconciliations: &fakeReconciliations{},
		APITokens: []string{token}, Ready: func(context.Context) error { return nil }, Registry: reg,
		Webhooks: map[string]WebhookSource{"payments": {Scheme: system.SchemeStandard, Secrets: []string{webhookSecret}}}})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, signedWebhook(t, "msg_9", paymentEvent, time.Now(), webhookSecret))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "refunded") {
		t.Errorf("answer = %d %s, want 200 saying it is refunded", rec.Code, rec.Body)
	}
	if got := counterValue(t, reg, "handoff_webhooks_total", map[string]string{"system": "payments", "result": "late_payment"}); got != 1 {
		t.Errorf("late payments counted = %v, want 1", got)
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func TestAServerCutsOffABodyThatNeverFinishesAndIdleConnections(t *testing.T) {
	h := echo.New()
	h.POST("/", func(c echo.Context) error {
		_, err := io.ReadAll(c.Request().Body)
		if err != nil {
			return err
		}
		return c.NoContent(http.StatusNoContent)
	})
	h.GET("/", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	srv := NewHTTPServer(h, Timeouts{ReadHeader: 200 * time.Millisecond, Read: 300 * time.Millisecond, Write: time.Second, Idle: 300 * time.Millisecond})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	closedWithin := func(conn net.Conn, limit time.Duration) error {
		_ = conn.SetReadDeadline(time.Now().Add(limit))
		_, err := io.Copy(io.Discard, conn)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return fmt.Errorf("still open after %v", limit)
		}
		return nil
	}

	// Headers, then half a body, then nothing.
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
	// Generous: the point is that the server ends it, not how fast.
	if err := closedWithin(conn, 10*time.Second); err != nil {
		t.Errorf("a body that never finishes: the connection is %v", err)
	}

	// A kept-alive connection that sends nothing more is reaped.
	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	fmt.Fprint(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(idle), nil)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("first request on the kept-alive connection: %v %v", resp, err)
	}
	if err := closedWithin(idle, 10*time.Second); err != nil {
		t.Errorf("an idle kept-alive connection: %v", err)
	}
}
