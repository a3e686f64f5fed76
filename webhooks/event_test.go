package webhooks

import (
	"errors"
	"testing"
	"time"

	"github.com/handoff-hq/handoff/action"
)

func TestDecodeStandard(t *testing.T) {
	const ok = `{"type":"payment.succeeded","timestamp":"2026-11-28T10:00:00Z","data":{"charge_id":"ch_1","external_ref":"order/A-1/charge","status":"succeeded","version":2}}`
	tests := []struct {
		name    string
		id      string
		body    string
		wantErr error
		want    action.PaymentEvent
	}{
		{"succeeded", "msg_1", ok, nil, action.PaymentEvent{EventID: "msg_1", Type: "payment.succeeded", OrderID: "A-1", ChargeID: "ch_1", Status: action.PaymentSucceeded, Version: 2, Ordered: true, OccurredAt: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)}},
		{"failed with reason", "msg_2", `{"type":"payment.failed","timestamp":"2026-11-28T10:00:00Z","data":{"charge_id":"ch_1","external_ref":"order/A-1/charge","version":2,"failure_code":"card_declined","failure_message":"no"}}`, nil,
			action.PaymentEvent{EventID: "msg_2", Type: "payment.failed", OrderID: "A-1", ChargeID: "ch_1", Status: action.PaymentFailed, Version: 2, Ordered: true, OccurredAt: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC), FailureCode: "card_declined", FailureMessage: "no"}},
		{"unhandled type", "msg_3", `{"type":"invoice.paid","timestamp":"2026-11-28T10:00:00Z","data":{}}`, ErrUnhandled, action.PaymentEvent{}},
		{"not JSON", "msg_4", `{`, ErrMalformed, action.PaymentEvent{}},
		{"no type", "msg_5", `{"data":{}}`, ErrMalformed, action.PaymentEvent{}},
		{"bad timestamp", "msg_6", `{"type":"payment.succeeded","timestamp":"yesterday","data":{"charge_id":"ch_1","external_ref":"order/A-1/charge","version":1}}`, ErrMalformed, action.PaymentEvent{}},
		{"not an order's charge", "msg_7", `{"type":"payment.succeeded","timestamp":"2026-11-28T10:00:00Z","data":{"charge_id":"ch_1","external_ref":"order/A-1/invoice","version":1}}`, ErrForeign, action.PaymentEvent{}},
		{"no reference", "msg_10", `{"type":"payment.succeeded","timestamp":"2026-11-28T10:00:00Z","data":{"charge_id":"ch_1","version":1}}`, ErrMalformed, action.PaymentEvent{}},
		{"cancelled", "msg_11", `{"type":"payment.canceled","timestamp":"2026-11-28T10:00:00Z","data":{"charge_id":"ch_1","external_ref":"order/A-1/charge","version":2,"failure_code":"canceled"}}`, nil,
			action.PaymentEvent{EventID: "msg_11", Type: "payment.canceled", OrderID: "A-1", ChargeID: "ch_1", Status: action.PaymentFailed, Version: 2, Ordered: true, OccurredAt: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC), FailureCode: "canceled"}},
		{"no version", "msg_8", `{"type":"payment.succeeded","timestamp":"2026-11-28T10:00:00Z","data":{"charge_id":"ch_1","external_ref":"order/A-1/charge"}}`, ErrMalformed, action.PaymentEvent{}},
		{"bad event id", "msg 9", ok, ErrMalformed, action.PaymentEvent{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeStandard(tt.id, []byte(tt.body))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("event = %+v\nwant    %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeStripe(t *testing.T) {
	// A failed attempt leaves the PaymentIntent open for another one: the
	// payment is still pending, with the decline's reason (personal data
	// masked).
	body := `{"id":"evt_1","type":"payment_intent.payment_failed","created":1700000000,"data":{"object":{"id":"pi_1","metadata":{"handoff_external_ref":"order/A-1/charge"},"last_payment_error":{"code":"card_declined","message":"card of ada@example.com declined"}}}}`
	got, err := DecodeStripe([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := action.PaymentEvent{EventID: "evt_1", Type: "payment_intent.payment_failed", OrderID: "A-1", ChargeID: "pi_1", Status: action.PaymentPending,
		Version: 1700000000, OccurredAt: time.Unix(1700000000, 0).UTC(), FailureCode: "card_declined", FailureMessage: "card of a***@example.com declined"}
	if got != want {
		t.Errorf("event = %+v\nwant    %+v", got, want)
	}
	if _, err := DecodeStripe([]byte(`{"id":"evt_2","type":"customer.created","created":1}`)); !errors.Is(err, ErrUnhandled) {
		t.Errorf("customer.created: %v, want ErrUnhandled", err)
	}
	// A PaymentIntent someone else made on a shared account is foreign, not malformed.
	if _, err := DecodeStripe([]byte(`{"id":"evt_3","type":"payment_intent.succeeded","created":1,"data":{"object":{"id":"pi_1"}}}`)); !errors.Is(err, ErrForeign) {
		t.Errorf("no reference: %v, want ErrForeign", err)
	}
	if _, err := DecodeStripe([]byte(`{"id":"evt_4","type":"payment_intent.succeeded","created":1,"data":{"object":{}}}`)); !errors.Is(err, ErrMalformed) {
		t.Errorf("no payment intent: %v, want ErrMalformed", err)
	}
}
