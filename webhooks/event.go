package webhooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/redact"
)

// Decoding failures.
var (
	// ErrMalformed means the body is not a valid event.
	ErrMalformed = errors.New("malformed webhook event")
	// ErrUnhandled means a well-formed event of a type handoff does not act on.
	ErrUnhandled = errors.New("webhook event type not handled")
	// ErrForeign means a well-formed event about a record handoff did not
	// make (another application on a shared provider account).
	ErrForeign = errors.New("webhook event about a record handoff did not make")
)

// OrderIDFromChargeRef extracts the order id from the external reference of
// an order's charge, "order/<id>/charge".
func OrderIDFromChargeRef(ref string) (string, bool) {
	k, err := action.ParseStepKey(ref)
	if err != nil || k.Action.Kind != action.KindOrder || k.Step != action.OrderStepCharge {
		return "", false
	}
	return k.Action.ID, true
}

var eventIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// standardEvent is the sandbox's event body.
type standardEvent struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	Data      struct {
		ChargeID       string `json:"charge_id"`
		ExternalRef    string `json:"external_ref"`
		Status         string `json:"status"`
		Version        int64  `json:"version"`
		FailureCode    string `json:"failure_code"`
		FailureMessage string `json:"failure_message"`
	} `json:"data"`
}

var standardPaymentTypes = map[string]string{
	"payment.pending":   action.PaymentPending,
	"payment.succeeded": action.PaymentSucceeded,
	"payment.failed":    action.PaymentFailed,
	"payment.canceled":  action.PaymentFailed,
}

// DecodeStandard decodes a verified Standard Webhooks payment event; the
// event id is the webhook-id header.
func DecodeStandard(id string, body []byte) (action.PaymentEvent, error) {
	var e standardEvent
	if err := json.Unmarshal(body, &e); err != nil {
		return action.PaymentEvent{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !eventIDPattern.MatchString(id) {
		return action.PaymentEvent{}, fmt.Errorf("%w: event id %q", ErrMalformed, id)
	}
	if e.Type == "" {
		return action.PaymentEvent{}, fmt.Errorf("%w: no type", ErrMalformed)
	}
	status, ok := standardPaymentTypes[e.Type]
	if !ok {
		return action.PaymentEvent{}, fmt.Errorf("%w: %s", ErrUnhandled, e.Type)
	}
	occurred, err := time.Parse(time.RFC3339Nano, e.Timestamp)
	if err != nil {
		return action.PaymentEvent{}, fmt.Errorf("%w: timestamp: %w", ErrMalformed, err)
	}
	if e.Data.ExternalRef == "" {
		return action.PaymentEvent{}, fmt.Errorf("%w: no external_ref", ErrMalformed)
	}
	orderID, ok := OrderIDFromChargeRef(e.Data.ExternalRef)
	if !ok {
		return action.PaymentEvent{}, fmt.Errorf("%w: external_ref is not an order's charge", ErrForeign)
	}
	if e.Data.ChargeID == "" || e.Data.Version < 1 {
		return action.PaymentEvent{}, fmt.Errorf("%w: charge_id and a positive version are required", ErrMalformed)
	}
	return action.PaymentEvent{
		EventID: id, Type: e.Type, OrderID: orderID, ChargeID: e.Data.ChargeID, Status: status,
		Version: e.Data.Version, Ordered: true, OccurredAt: occurred,
		FailureCode: e.Data.FailureCode, FailureMessage: redact.Text(e.Data.FailureMessage),
	}, nil
}

// stripeEvent is the part of a Stripe event handoff reads.
type stripeEvent struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Created int64  `json:"created"`
	Data    struct {
		Object struct {
			ID               string            `json:"id"`
			Metadata         map[string]string `json:"metadata"`
			LastPaymentError *struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"last_payment_error"`
		} `json:"object"`
	} `json:"data"`
}

// stripePaymentTypes follows Stripe's PaymentIntent lifecycle: a failed
// payment attempt leaves the PaymentIntent open for another attempt (it is
// still pending), and only a cancelled one has failed for good.
var stripePaymentTypes = map[string]string{
	"payment_intent.processing":     action.PaymentPending,
	"payment_intent.succeeded":      action.PaymentSucceeded,
	"payment_intent.payment_failed": action.PaymentPending,
	"payment_intent.canceled":       action.PaymentFailed,
}

// StripeExternalRefKey is the PaymentIntent metadata key holding handoff's
// external reference (see providers/stripe).
const StripeExternalRefKey = "handoff_external_ref"

// DecodeStripe decodes a verified Stripe event about a PaymentIntent. Its
// version is the event's creation second, so two events of the same second
// cannot be ordered, and the workflow asks Stripe instead.
func DecodeStripe(body []byte) (action.PaymentEvent, error) {
	var e stripeEvent
	if err := json.Unmarshal(body, &e); err != nil {
		return action.PaymentEvent{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !strings.HasPrefix(e.ID, "evt_") || !eventIDPattern.MatchString(e.ID) || e.Type == "" || e.Created <= 0 {
		return action.PaymentEvent{}, fmt.Errorf("%w: id, type and created are required", ErrMalformed)
	}
	status, ok := stripePaymentTypes[e.Type]
	if !ok {
		return action.PaymentEvent{}, fmt.Errorf("%w: %s", ErrUnhandled, e.Type)
	}
	obj := e.Data.Object
	if obj.ID == "" {
		return action.PaymentEvent{}, fmt.Errorf("%w: no payment intent", ErrMalformed)
	}
	orderID, ok := OrderIDFromChargeRef(obj.Metadata[StripeExternalRefKey])
	if !ok {
		// A genuine event for a PaymentIntent of someone else on the same
		// Stripe account: acknowledged, so that Stripe does not retry it
		// for days and disable the endpoint.
		return action.PaymentEvent{}, fmt.Errorf("%w: payment intent without handoff's reference", ErrForeign)
	}
	pe := action.PaymentEvent{
		EventID: e.ID, Type: e.Type, OrderID: orderID, ChargeID: obj.ID, Status: status,
		Version: e.Created, OccurredAt: time.Unix(e.Created, 0).UTC(),
	}
	if obj.LastPaymentError != nil {
		pe.FailureCode, pe.FailureMessage = obj.LastPaymentError.Code, redact.Text(obj.LastPaymentError.Message)
	}
	return pe, nil
}
