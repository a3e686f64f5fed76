package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/system"
	"github.com/handoff-hq/handoff/webhooks"
)

// fakeEvents records the events handed on and answers as scripted.
type fakeEvents struct {
	got   []action.PaymentEvent
	err   error
	delay time.Duration
}

func (f *fakeEvents) DeliverPaymentEvent(ctx context.Context, e action.PaymentEvent) error {
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.got = append(f.got, e)
	return f.err
}

const webhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func newWebhookServer(t *testing.T, events *fakeEvents) *Server {
	t.Helper()
	s, err := New(Options{Orders: &fakeOrders{}, Events: events, Operators: &fakeOperators{}, Reconciliations: &fakeReconciliations{}, APITokens: []string{token},
		Ready:    func(context.Context) error { return nil },
		Webhooks: map[string]WebhookSource{"payments": {Scheme: system.SchemeStandard, Secrets: []string{"whsec_b2xkLXNlY3JldC1mb3ItdGVzdHM=", webhookSecret}}}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const paymentEvent = `{"type":"payment.succeeded","timestamp":"2026-11-28T10:00:00Z","data":{"charge_id":"ch_1","external_ref":"order/A-1/charge","status":"succeeded","version":2}}`

func signedWebhook(t *testing.T, id, body string, at time.Time, secret string) *http.Request {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/webhooks/payments", strings.NewReader(body))
	if secret != "" {
		sig, err := webhooks.SignStandard(secret, id, at.Unix(), []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(webhooks.HeaderSignature, sig)
	}
	req.Header.Set(webhooks.HeaderID, id)
	req.Header.Set(webhooks.HeaderTimestamp, strconv.FormatInt(at.Unix(), 10))
	return req
}

func TestWebhookAnswers(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name        string
		req         *http.Request
		deliverErr  error
		wantStatus  int
		wantProblem string
		wantHanded  int
	}{
		{"signed", signedWebhook(t, "msg_1", paymentEvent, now, webhookSecret), nil, 200, "", 1},
		{"unsigned", signedWebhook(t, "msg_1", paymentEvent, now, ""), nil, 401, "invalid-signature", 0},
		{"wrongly signed", signedWebhook(t, "msg_1", paymentEvent, now, "whsec_d3Jvbmcta2V5LWZvci10ZXN0cw=="), nil, 401, "invalid-signature", 0},
		{"stale", signedWebhook(t, "msg_1", paymentEvent, now.Add(-10*time.Minute), webhookSecret), nil, 401, "stale-signature", 0},
		{"oversized", signedWebhook(t, "msg_1", `{"pad":"`+strings.Repeat("x", maxWebhookBytes)+`"}`, now, webhookSecret), nil, 413, "too-large", 0},
		{"malformed", signedWebhook(t, "msg_1", `{"type":"payment.succeeded","data":{}}`, now, webhookSecret), nil, 400, "invalid-request", 0},
		{"unhandled type", signedWebhook(t, "msg_1", `{"type":"payment.refunded","timestamp":"2026-11-28T10:00:00Z","data":{}}`, now, webhookSecret), nil, 202, "", 0},
		{"order finished", signedWebhook(t, "msg_1", paymentEvent, now, webhookSecret), control.ErrActionFinished, 200, "", 1},
		{"order not placed yet", signedWebhook(t, "msg_1", paymentEvent, now, webhookSecret), control.ErrActionUnknown, 503, "unavailable", 1},
		{"temporal down", signedWebhook(t, "msg_1", paymentEvent, now, webhookSecret), errors.New("unavailable"), 503, "unavailable", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events := &fakeEvents{err: tt.deliverErr}
			rec := httptest.NewRecorder()
			newWebhookServer(t, events).ServeHTTP(rec, tt.req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if len(events.got) != tt.wantHanded {
				t.Errorf("events handed on = %d, want %d", len(events.got), tt.wantHanded)
			}
			if tt.wantProblem != "" {
				var p Problem
				if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Type != problemTypePrefix+tt.wantProblem {
					t.Errorf("problem = %s, want type %s", rec.Body, tt.wantProblem)
				}
			}
			if tt.wantStatus == 503 && rec.Header().Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			if strings.Contains(rec.Body.String(), webhookSecret) {
				t.Error("the answer contains the secret")
			}
		})
	}
}

func TestWebhookHandsOnTheDecodedEvent(t *testing.T) {
	events := &fakeEvents{}
	rec := httptest.NewRecorder()
	newWebhookServer(t, events).ServeHTTP(rec, signedWebhook(t, "msg_42", paymentEvent, time.Now(), webhookSecret))
	if rec.Code != 200 || len(events.got) != 1 {
		t.Fatalf("status %d, %d events", rec.Code, len(events.got))
	}
	e := events.got[0]
	if e.EventID != "msg_42" || e.OrderID != "A-1" || e.ChargeID != "ch_1" || e.Status != action.PaymentSucceeded || e.Version != 2 {
		t.Errorf("event = %+v", e)
	}
}

func TestWebhookGivesUpOnSlowTemporalWith503(t *testing.T) {
	events := &fakeEvents{delay: time.Minute}
	rec := httptest.NewRecorder()
	// The fake would take a minute; the deadline ends the wait first.
	newWebhookServer(t, events).ServeHTTP(rec, signedWebhook(t, "msg_1", paymentEvent, time.Now(), webhookSecret))
	if rec.Code != 503 || len(events.got) != 0 {
		t.Errorf("status = %d with %d events handed on, want 503 and none", rec.Code, len(events.got))
	}
}

func TestWebhookForUnconfiguredSystem(t *testing.T) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/webhooks/crm", strings.NewReader("{}"))
	newWebhookServer(t, &fakeEvents{}).ServeHTTP(rec, req)
	if rec.Code != 404 {
		t.Errorf("status = %d, want 404", rec.Code)
	}
}
