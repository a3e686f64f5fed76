package stripe

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"strings"
	"testing"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/providers"
	"github.com/handoff-hq/handoff/providers/stripe/stripetest"
)

// testKey is stripe-mock's accepted form of a test secret key.
const testKey = stripetest.Key

func stripeMock(t *testing.T) string { return stripetest.URL(t) }

func TestMain(m *testing.M) {
	code := m.Run()
	stripetest.Stop()
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
		wantCat  action.Category
		wantType string
	}{
		{"unknown parameter", invalid, action.CategoryPermanent, action.TypeInvalidInput},
		{"missing required parameter", missingAmount, action.CategoryPermanent, action.TypeInvalidInput},
		{"no key", missingKey, action.CategoryPermanent, action.TypeUnauthorized},
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
		wantCat  action.Category
		wantType string
	}{
		{"card declined", 402, `{"error":{"type":"card_error","code":"card_declined","message":"Your card was declined."}}`, action.CategoryPermanent, action.TypeCardDeclined},
		{"rate limited", 429, `{"error":{"type":"rate_limit_error","message":"Too many requests"}}`, action.CategoryTemporary, action.TypeTemporary},
		{"api error", 500, `{"error":{"type":"api_error","message":"Something went wrong"}}`, action.CategoryTemporary, action.TypeTemporary},
		{"idempotency key reused", 400, `{"error":{"type":"idempotency_error","message":"Keys for idempotent requests can only be used with the same parameters"}}`, action.CategoryPermanent, action.TypeConflict},
		{"bad key", 401, `{"error":{"type":"invalid_request_error","message":"Invalid API Key provided"}}`, action.CategoryPermanent, action.TypeUnauthorized},
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

func TestChargeStatusFollowsStripesLifecycle(t *testing.T) {
	tests := []struct {
		status string
		want   string
	}{
		{"succeeded", providers.ChargeSucceeded},
		{"processing", providers.ChargePending},
		{"requires_action", providers.ChargePending},
		{"requires_capture", providers.ChargePending},
		{"requires_confirmation", providers.ChargePending},
		// A first decline is not final: the customer may pay again.
		{"requires_payment_method", providers.ChargePending},
		{"canceled", providers.ChargeCanceled},
	}
	for _, tt := range tests {
		if got := ChargeStatus(tt.status); got != tt.want {
			t.Errorf("ChargeStatus(%s) = %s, want %s", tt.status, got, tt.want)
		}
	}
}

func TestADeclinedAttemptKeepsThePaymentIntentPendingWithItsMaskedReason(t *testing.T) {
	srv := httptest.NewServer(&stripeAnswer{status: 200, body: `{"id":"pi_1","object":"payment_intent","status":"requires_payment_method",
		"last_payment_error":{"code":"card_declined","message":"The card 4000 0000 0000 0002 of ada@example.com was declined."}}`})
	defer srv.Close()
	got, err := NewClient(srv.URL, testKey, providers.HTTPOptions{}).GetCharge(context.Background(), providers.Call{}, "pi_1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != providers.ChargePending || got.FailureCode != "card_declined" {
		t.Errorf("charge = %+v, want pending with the decline's code", got)
	}
	if strings.Contains(got.FailureMessage, "ada@") || strings.Contains(got.FailureMessage, "0000 0002") {
		t.Errorf("failure message %q carries personal data", got.FailureMessage)
	}
}

func TestCancelAndFindRefundAgainstStripeMock(t *testing.T) {
	c := NewClient(stripeMock(t), testKey, providers.HTTPOptions{})
	ctx := context.Background()
	created, err := c.CreateCharge(ctx, providers.Call{IdempotencyKey: "order/A-2/charge"}, providers.ChargeRequest{Amount: 2500, Currency: "eur"})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	// stripe-mock validates the requests and answers canned objects.
	if _, err := c.CancelCharge(ctx, providers.Call{IdempotencyKey: "order/A-2/cancel_charge"}, created.ID); err != nil {
		t.Errorf("cancel: %v", err)
	}
	if _, _, err := c.FindRefund(ctx, providers.Call{}, created.ID); err != nil {
		t.Errorf("find refund: %v", err)
	}
}

func TestCancelOfASucceededPaymentIntentAnswersItAsItStands(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":{"type":"invalid_request_error","code":"payment_intent_unexpected_state","message":"You cannot cancel this PaymentIntent because it has a status of succeeded."}}`)
			return
		}
		_, _ = io.WriteString(w, `{"id":"pi_1","object":"payment_intent","status":"succeeded"}`)
	}))
	defer srv.Close()
	got, err := NewClient(srv.URL, testKey, providers.HTTPOptions{}).CancelCharge(context.Background(), providers.Call{IdempotencyKey: "k"}, "pi_1")
	if err != nil || got.Status != providers.ChargeSucceeded {
		t.Errorf("cancel = %+v, %v; want the succeeded PaymentIntent", got, err)
	}
}
