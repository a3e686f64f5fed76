package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/system"
	"github.com/handoff-hq/handoff/webhooks"
)

// maxWebhookBytes bounds a webhook body.
const maxWebhookBytes = 1 << 20

// webhookDeadline bounds how long a delivery waits for Temporal before the
// provider is told to try again.
const webhookDeadline = 3 * time.Second

// WebhookSource is how one system signs its webhooks.
type WebhookSource struct {
	Scheme system.Scheme
	// Secrets are the active signing secrets; two during a rotation.
	Secrets []string
}

// Events is what the webhook endpoint hands verified events to.
type Events interface {
	DeliverPaymentEvent(ctx context.Context, e action.PaymentEvent) error
}

// Webhook problem kinds.
var (
	problemBadSignature   = problemKind{http.StatusUnauthorized, "invalid-signature", "The webhook signature is missing or does not match"}
	problemStaleSignature = problemKind{http.StatusUnauthorized, "stale-signature", "The webhook timestamp is outside the tolerance"}
)

// unknownSystem is the one label webhooks to systems handoff does not know
// are counted under.
const unknownSystem = "unknown"

// webhookAnswer is the body of a 2xx answer to a webhook.
type webhookAnswer struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// webhook verifies, decodes and durably hands on one provider webhook. It
// answers 2xx only once Temporal has accepted the event, and 503 with
// Retry-After when it could not, so that the provider delivers it again.
// It calls no provider: its latency is Temporal's alone.
func (s *Server) webhook(c echo.Context) error {
	name := c.Param("system")
	src, known := s.webhooks[name]
	if !known {
		// The path is anyone's to choose: it never becomes a label.
		s.metrics.webhook(unknownSystem, "unknown_system")
		return problemNotFound.with("no such system")
	}
	if len(src.Secrets) == 0 {
		s.metrics.webhook(name, "unknown_system")
		return problemNotFound.with("no webhooks are configured for this system")
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, maxWebhookBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		s.metrics.webhook(name, "too_large")
		return problemTooLarge.with(fmt.Sprintf("a webhook body must be at most %d bytes", maxWebhookBytes))
	}
	if err != nil {
		return problemInvalid.with("the body could not be read")
	}
	if s.customers != nil && src.Scheme == system.SchemeStandard && webhooks.CustomerEvents(name) {
		return s.customerWebhook(c, name, src, body)
	}
	event, err := decodeWebhook(name, src, c.Request().Header, body, time.Now())
	if p := s.signatureProblem(name, err); p != nil {
		return p
	}
	switch {
	case errors.Is(err, webhooks.ErrUnhandled):
		s.metrics.webhook(name, "unhandled")
		return c.JSON(http.StatusAccepted, webhookAnswer{Status: "ignored", Reason: "event type not handled"})
	case errors.Is(err, webhooks.ErrForeign):
		s.metrics.webhook(name, "foreign")
		return c.JSON(http.StatusAccepted, webhookAnswer{Status: "ignored", Reason: "the event is about a record handoff did not make"})
	case err != nil:
		s.metrics.webhook(name, "malformed")
		p := problemInvalid.with("the event is malformed")
		return p
	}
	event.ReceivedAt, event.RequestID = time.Now(), correlationID(c)
	s.metrics.received(name, event.OccurredAt, event.ReceivedAt)
	c.Set(businessKey, event.OrderID)
	ctx, cancel := context.WithTimeout(c.Request().Context(), webhookDeadline)
	defer cancel()
	err = s.events.DeliverPaymentEvent(ctx, event)
	switch {
	case err == nil:
		s.metrics.webhook(name, "accepted")
		return c.JSON(http.StatusOK, webhookAnswer{Status: "accepted"})
	case errors.Is(err, control.ErrLatePayment):
		s.metrics.webhook(name, "late_payment")
		s.log.Warn("payment succeeded after its order ended: refunding it", "system", name, "event_id", event.EventID, "order_id", event.OrderID)
		return c.JSON(http.StatusOK, webhookAnswer{Status: "accepted", Reason: "the order had ended without this payment; it is being refunded"})
	case errors.Is(err, control.ErrActionFinished):
		s.metrics.webhook(name, "finished")
		return c.JSON(http.StatusOK, webhookAnswer{Status: "ignored", Reason: "the order has already finished"})
	case errors.Is(err, control.ErrActionUnknown):
		// The order is not placed yet: the provider keeps the event and
		// delivers it again.
		s.metrics.webhook(name, "early")
		return problemUnavailable.with("no order for this event yet; deliver it again later")
	default:
		s.metrics.webhook(name, "unavailable")
		s.log.Warn("webhook not accepted", "system", name, "event_id", event.EventID, "order_id", event.OrderID, "error", err)
		return problemUnavailable.with("the event could not be recorded; deliver it again later")
	}
}

// signatureProblem is the answer to a webhook whose signature did not
// verify, nil for any other outcome.
func (s *Server) signatureProblem(name string, err error) *Problem {
	switch {
	case errors.Is(err, webhooks.ErrStale):
		s.metrics.webhook(name, "stale")
		return problemStaleSignature.with("")
	case errors.Is(err, webhooks.ErrNoSignature), errors.Is(err, webhooks.ErrBadSignature), errors.Is(err, webhooks.ErrNoSecret):
		s.metrics.webhook(name, "bad_signature")
		return problemBadSignature.with("")
	}
	return nil
}

// decodeWebhook verifies the signature before reading anything else.
func decodeWebhook(name string, src WebhookSource, h http.Header, body []byte, now time.Time) (action.PaymentEvent, error) {
	if src.Scheme == system.SchemeStripe {
		if err := webhooks.VerifyStripe(src.Secrets, h, body, now); err != nil {
			return action.PaymentEvent{}, err
		}
		return webhooks.DecodeStripe(body)
	}
	id, err := webhooks.VerifyStandard(src.Secrets, h, body, now)
	if err != nil {
		return action.PaymentEvent{}, err
	}
	if name != system.Payments.Name {
		return action.PaymentEvent{}, webhooks.ErrUnhandled
	}
	return webhooks.DecodeStandard(id, body)
}
