package stripe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/handoff-hq/handoff/providers"
)

// testKey is stripe-mock's accepted form of a test secret key; it is not a
// real credential.
const testKey = "sk_test_123"

var mock struct {
	once sync.Once
	url  string
	cmd  *exec.Cmd
	err  error
}

// stripeMock starts the pinned stripe-mock (built into ./bin by the
// Makefile) once for the package, on a free loopback port. It validates
// every request against Stripe's OpenAPI spec.
func stripeMock(t *testing.T) string {
	t.Helper()
	mock.once.Do(func() { mock.url, mock.cmd, mock.err = startStripeMock() })
	if mock.err != nil {
		t.Fatal(mock.err)
	}
	return mock.url
}

func startStripeMock() (string, *exec.Cmd, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", nil, err
	}
	for ; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		if dir == filepath.Dir(dir) {
			return "", nil, errors.New("no go.mod above the test")
		}
	}
	bin := filepath.Join(dir, "bin", "stripe-mock")
	if _, err := os.Stat(bin); err != nil {
		return "", nil, fmt.Errorf("%s is missing: run the tests with `make test`, which builds it: %w", bin, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "-http-addr", fmt.Sprintf("127.0.0.1:%d", port))
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start stripe-mock: %w", err)
	}
	go func() { _ = cmd.Wait() }()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if conn, err := net.Dial("tcp", addr); err == nil {
			conn.Close()
			return "http://" + addr, cmd, nil
		}
	}
	_ = cmd.Process.Kill()
	return "", nil, errors.New("stripe-mock did not start listening within 20 s")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if mock.cmd != nil {
		_ = mock.cmd.Process.Kill()
	}
	os.Exit(code)
}

func TestCreateAndRetrieveAgainstStripeMock(t *testing.T) {
	c := NewClient(stripeMock(t), testKey, providers.HTTPOptions{})
	ctx := context.Background()
	call := providers.Call{IdempotencyKey: "order/A-1/charge", CorrelationID: "corr-1"}
	created, err := c.CreateCharge(ctx, call, providers.ChargeRequest{Amount: 2500, Currency: "EUR", Email: "ada@example.com", Description: "Order A-1"})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if !strings.HasPrefix(created.ID, "pi_") || created.Amount != 2500 || created.Currency != "eur" {
		t.Errorf("created = %+v, want a PaymentIntent of 2500 eur", created)
	}
	got, err := c.GetCharge(ctx, call, created.ID)
	if err != nil {
		t.Fatalf("retrieve: %v", err)
	}
	if got.ID != created.ID {
		t.Errorf("retrieved %s, want %s", got.ID, created.ID)
	}
	if _, _, err := c.FindCharge(ctx, call, call.IdempotencyKey); err != nil {
		t.Errorf("search: %v", err)
	}
	refund, err := c.RefundCharge(ctx, providers.Call{IdempotencyKey: "order/A-1/refund"}, providers.RefundRequest{Charge: created.ID})
	if err != nil || !strings.HasPrefix(refund.ID, "re_") {
		t.Errorf("refund = %+v, %v; want a refund", refund, err)
	}
}

func TestErrorPathsAgainstStripeMock(t *testing.T) {
	url := stripeMock(t)
	ctx := context.Background()
	// stripe-mock validates every request against Stripe's OpenAPI spec and
	// answers like Stripe when it does not fit.
	invalid := func(c *Client) error {
		form := url2Values("amount", "100", "currency", "eur", "not_a_stripe_parameter", "x")
		return c.http.Do(ctx, providers.Request{Operation: "create_charge", Method: http.MethodPost, Path: "/v1/payment_intents", Form: form}, nil)
	}
	missingKey := func(*Client) error {
		_, err := NewClient(url, "", providers.HTTPOptions{}).CreateCharge(ctx, providers.Call{IdempotencyKey: "order/no-key/charge"}, providers.ChargeRequest{Amount: 100, Currency: "eur"})
		return err
	}
	missingAmount := func(c *Client) error {
		return c.http.Do(ctx, providers.Request{Operation: "create_charge", Method: http.MethodPost, Path: "/v1/payment_intents", Form: url2Values("currency", "eur")}, nil)
	}
	tests := []struct {
		name     string
		call     func(*Client) error
		wantCat  providers.Category
		wantType string
	}{
		{"unknown parameter", invalid, providers.Permanent, providers.TypeInvalidInput},
		{"missing required parameter", missingAmount, providers.Permanent, providers.TypeInvalidInput},
		{"no key", missingKey, providers.Permanent, providers.TypeUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(NewClient(url, testKey, providers.HTTPOptions{}))
			var pe *providers.Error
			if !errors.As(err, &pe) || pe.Category != tt.wantCat || pe.Type != tt.wantType {
				t.Errorf("error = %v, want %s %s", err, tt.wantCat, tt.wantType)
			}
		})
	}
}

func url2Values(kv ...string) neturl.Values {
	v := neturl.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// stripeAnswer is an httptest handler answering like Stripe, recording what
// it was sent.
type stripeAnswer struct {
	status int
	body   string
	header http.Header
	form   string
}

func (s *stripeAnswer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.header = r.Header.Clone()
	b, _ := io.ReadAll(r.Body)
	s.form = string(b)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(s.status)
	_, _ = io.WriteString(w, s.body)
}

func TestStripeErrorTypesAreClassified(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		wantCat  providers.Category
		wantType string
	}{
		{"card declined", 402, `{"error":{"type":"card_error","code":"card_declined","message":"Your card was declined."}}`, providers.Permanent, providers.TypeCardDeclined},
		{"rate limited", 429, `{"error":{"type":"rate_limit_error","message":"Too many requests"}}`, providers.Temporary, providers.TypeTemporary},
		{"api error", 500, `{"error":{"type":"api_error","message":"Something went wrong"}}`, providers.Temporary, providers.TypeTemporary},
		{"idempotency key reused", 400, `{"error":{"type":"idempotency_error","message":"Keys for idempotent requests can only be used with the same parameters"}}`, providers.Permanent, providers.TypeConflict},
		{"bad key", 401, `{"error":{"type":"invalid_request_error","message":"Invalid API Key provided"}}`, providers.Permanent, providers.TypeUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(&stripeAnswer{status: tt.status, body: tt.body})
			defer srv.Close()
			_, err := NewClient(srv.URL, testKey, providers.HTTPOptions{}).CreateCharge(context.Background(), providers.Call{IdempotencyKey: "k"}, providers.ChargeRequest{Amount: 1, Currency: "eur"})
			var pe *providers.Error
			if !errors.As(err, &pe) || pe.Category != tt.wantCat || pe.Type != tt.wantType {
				t.Errorf("error = %v, want %s %s", err, tt.wantCat, tt.wantType)
			}
		})
	}
}

func TestCreateSendsIdempotencyKeyVersionAndReference(t *testing.T) {
	answer := &stripeAnswer{status: 200, body: `{"id":"pi_1","object":"payment_intent","amount":100,"currency":"eur","status":"processing","metadata":{"handoff_external_ref":"order/A-1/charge"}}`}
	srv := httptest.NewServer(answer)
	defer srv.Close()
	got, err := NewClient(srv.URL, testKey, providers.HTTPOptions{}).CreateCharge(context.Background(),
		providers.Call{IdempotencyKey: "order/A-1/charge"}, providers.ChargeRequest{Amount: 100, Currency: "eur"})
	if err != nil {
		t.Fatal(err)
	}
	if answer.header.Get("Idempotency-Key") != "order/A-1/charge" || answer.header.Get("Stripe-Version") != APIVersion ||
		answer.header.Get("Authorization") != "Bearer "+testKey {
		t.Errorf("headers = %v", answer.header)
	}
	if !strings.Contains(answer.form, "metadata%5Bhandoff_external_ref%5D=order%2FA-1%2Fcharge") || !strings.Contains(answer.form, "amount=100") {
		t.Errorf("form = %s, want the amount and the external reference", answer.form)
	}
	if got.Status != providers.ChargePending || got.ExternalRef != "order/A-1/charge" {
		t.Errorf("charge = %+v, want pending with the reference", got)
	}
}

func TestChargeStatus(t *testing.T) {
	tests := []struct {
		status string
		failed bool
		want   string
	}{
		{"succeeded", false, providers.ChargeSucceeded},
		{"processing", false, providers.ChargePending},
		{"requires_action", false, providers.ChargePending},
		{"requires_capture", false, providers.ChargePending},
		{"requires_payment_method", false, providers.ChargePending},
		{"requires_payment_method", true, providers.ChargeFailed},
		{"canceled", false, providers.ChargeFailed},
	}
	for _, tt := range tests {
		if got := ChargeStatus(tt.status, tt.failed); got != tt.want {
			t.Errorf("ChargeStatus(%s, %v) = %s, want %s", tt.status, tt.failed, got, tt.want)
		}
	}
}
