package action

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// KindCustomer is the action "keep a customer the same in every system":
// "customer/<customer_id>", one long-lived workflow per customer.
const KindCustomer Kind = "customer"

// CustomerKey is the key of the customer with the given id.
func CustomerKey(id string) Key { return Key{Kind: KindCustomer, ID: id} }

// The fields of a customer, as handoff names them in the API, the
// contracts' ownership and every system's adapter.
const (
	FieldEmail          = "email"
	FieldName           = "name"
	FieldPhone          = "phone"
	FieldBillingAddress = "billing_address"
	FieldTaxID          = "tax_id"
	FieldPaymentTerms   = "payment_terms"
)

// CustomerFields lists every customer field, in the order reports show them.
var CustomerFields = []string{FieldEmail, FieldName, FieldPhone, FieldBillingAddress, FieldTaxID, FieldPaymentTerms}

// SourceApplication is the application, as the source of a customer change
// (PUT /v1/customers/{customer_id}).
const SourceApplication = "application"

// CustomerChange is one source's news about a customer: a system's webhook
// (its record as it now stands) or the application's PUT (the fields it
// sends). It is what the customer's workflow receives, as a signal or an
// update.
type CustomerChange struct {
	// Source is the system that changed ("crm", "accounting") or
	// SourceApplication.
	Source string `json:"source"`
	// RecordID is the source's record, empty for the application.
	RecordID string `json:"record_id,omitempty"`
	// ExternalRef is the reference the record holds ("customer/<id>").
	ExternalRef string `json:"external_ref,omitempty"`
	// Version orders the source's changes to the record (the
	// application's: to the customer): a higher version is newer.
	Version int64 `json:"version"`
	// Fields are the values the source holds, by field name.
	Fields map[string]string `json:"fields"`
	// EventID and Type name the webhook event, empty for the application.
	EventID    string    `json:"event_id,omitempty"`
	Type       string    `json:"type,omitempty"`
	OccurredAt time.Time `json:"occurred_at"`
	// ReceivedAt is when handoff's API received the webhook, zero for
	// the application's changes and reconciliation's deliveries.
	ReceivedAt time.Time `json:"received_at,omitzero"`
	// RequestID is the correlation id of the webhook request that
	// brought the change, which the workflow logs when it applies it.
	RequestID string `json:"request_id,omitempty"`
	// RequestHash identifies the application's request, so that the same
	// request sent again is answered as a replay.
	RequestHash string `json:"request_hash,omitempty"`
}

// A normalized e-mail address for matching: trimmed and lower-cased.
func NormalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// emailShape is what an e-mail address looks like to workflow code, which
// cannot use net/mail: something, an @, and a domain with a dot.
var emailShape = regexp.MustCompile(`^[^\s@]+@[^\s@]+\.[^\s@]+$`)

// maxFieldLength bounds one customer field's value.
const maxFieldLength = 1000

// CheckCustomerField reports why a value cannot be a customer field's, or
// "" when it can. A source's change with such a value is never propagated.
// It is deterministic, for workflow code.
func CheckCustomerField(field, value string) string {
	switch {
	case !slices.Contains(CustomerFields, field):
		return "is not a customer field"
	case len(value) > maxFieldLength:
		return fmt.Sprintf("is longer than %d bytes", maxFieldLength)
	case field == FieldEmail && value == "":
		return "is required"
	case field == FieldEmail && !emailShape.MatchString(value):
		return "must be an e-mail address"
	case strings.ContainsAny(value, "\x00\r"):
		return "holds control characters"
	}
	return ""
}
