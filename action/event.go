package action

import "time"

// Payment statuses a provider event can report.
const (
	PaymentPending   = "pending"
	PaymentSucceeded = "succeeded"
	PaymentFailed    = "failed"
)

// PaymentEvent is a provider's news about a charge, in handoff's terms: what
// the webhook endpoint decodes, and what the order's workflow receives as a
// signal, unchanged.
type PaymentEvent struct {
	// EventID identifies the delivery's event; duplicates share it.
	EventID string `json:"event_id"`
	Type    string `json:"type"`
	// OrderID is the order the charge belongs to, from its external reference.
	OrderID  string `json:"order_id"`
	ChargeID string `json:"charge_id"`
	Status   string `json:"status"`
	// Version orders events about one charge: a higher version is newer.
	// Events with equal versions cannot be ordered.
	Version int64 `json:"version"`
	// Ordered is true when Version is the provider's own sequence; false
	// when it is only a timestamp, too coarse to trust on its own.
	Ordered    bool      `json:"ordered"`
	OccurredAt time.Time `json:"occurred_at"`
	// ReceivedAt is when handoff's API received the webhook; zero for
	// news handoff fetched itself.
	ReceivedAt time.Time `json:"received_at,omitzero"`
	// RequestID is the correlation id of the webhook request that
	// brought the event, which the workflow logs when it applies it.
	RequestID      string `json:"request_id,omitempty"`
	FailureCode    string `json:"failure_code"`
	FailureMessage string `json:"failure_message"`
}
