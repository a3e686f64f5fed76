package providers

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/handoff-hq/handoff/redact"
)

// Category says what a failed provider call means for the next attempt.
type Category string

const (
	// Temporary failures did not happen at the provider; try again later.
	Temporary Category = "temporary"
	// Permanent failures will fail the same way again; an operator must act.
	Permanent Category = "permanent"
	// Ambiguous failures may or may not have happened at the provider: the
	// request was sent and no answer came. The next attempt first looks the
	// record up by its external reference.
	Ambiguous Category = "ambiguous"
)

// Error types of permanent failures; they become Temporal error type names.
const (
	TypeInvalidInput = "InvalidInput"
	TypeUnauthorized = "Unauthorized"
	TypeForbidden    = "Forbidden"
	TypeNotFound     = "NotFound"
	TypeConflict     = "Conflict"
	TypeCardDeclined = "CardDeclined"
	TypeUnsupported  = "Unsupported"
	TypeTemporary    = "ProviderUnavailable"
	TypeAmbiguous    = "AmbiguousOutcome"
	// TypePaused is a call that was not sent because an operator paused
	// the provider; it is temporary.
	TypePaused = "ProviderPaused"
)

// Error is a classified failure of one provider call.
type Error struct {
	System    string
	Operation string
	Category  Category
	// Type names the failure for Temporal and for operators.
	Type string
	// Status is the HTTP status, 0 when no answer came.
	Status int
	// Code and Message are the provider's own, when it sent them.
	Code    string
	Message string
	// RetryAfter is the provider's Retry-After in seconds, 0 when absent.
	RetryAfter int
	Err        error
}

// Error describes the failure with personal data masked (see redact), since
// the text is stored on the order and logged.
func (e *Error) Error() string {
	msg := e.Message
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	if e.Status != 0 {
		return redact.Text(fmt.Sprintf("%s %s: %s (%d %s): %s", e.System, e.Operation, e.Category, e.Status, e.Type, msg))
	}
	return redact.Text(fmt.Sprintf("%s %s: %s (%s): %s", e.System, e.Operation, e.Category, e.Type, msg))
}

func (e *Error) Unwrap() error { return e.Err }

// statusTable is the one classification of HTTP answers. A status not listed
// is temporary when it is 5xx and permanent otherwise.
var statusTable = map[int]struct {
	category Category
	typ      string
}{
	http.StatusBadRequest:          {Permanent, TypeInvalidInput},
	http.StatusUnauthorized:        {Permanent, TypeUnauthorized},
	http.StatusForbidden:           {Permanent, TypeForbidden},
	http.StatusNotFound:            {Permanent, TypeNotFound},
	http.StatusConflict:            {Permanent, TypeConflict},
	http.StatusUnprocessableEntity: {Permanent, TypeInvalidInput},
	http.StatusRequestTimeout:      {Temporary, TypeTemporary},
	http.StatusTooManyRequests:     {Temporary, TypeTemporary},
	http.StatusInternalServerError: {Temporary, TypeTemporary},
	http.StatusBadGateway:          {Temporary, TypeTemporary},
	http.StatusServiceUnavailable:  {Temporary, TypeTemporary},
	http.StatusGatewayTimeout:      {Temporary, TypeTemporary},
}

// errorTypeTable classifies by the error type a provider names in its answer
// (Stripe's types, which the sandbox uses too); it takes precedence over the
// status, as Stripe advises. A type not listed is classified by status.
var errorTypeTable = map[string]struct {
	category Category
	typ      string
}{
	"card_error":           {Permanent, TypeCardDeclined},
	"idempotency_error":    {Permanent, TypeConflict},
	"authentication_error": {Permanent, TypeUnauthorized},
	"rate_limit_error":     {Temporary, TypeTemporary},
	"api_error":            {Temporary, TypeTemporary},
}

// Classify maps a non-2xx answer to its category and type name: by the
// provider's error type when it names a known one, else by status.
func Classify(status int, errorType string) (Category, string) {
	if c, ok := errorTypeTable[errorType]; ok {
		return c.category, c.typ
	}
	return ClassifyStatus(status)
}

// ClassifyStatus maps a non-2xx HTTP status to its category and type name.
func ClassifyStatus(status int) (Category, string) {
	if c, ok := statusTable[status]; ok {
		return c.category, c.typ
	}
	if status >= 500 {
		return Temporary, TypeTemporary
	}
	return Permanent, TypeUnsupported
}

// CategoryOf returns the category of a provider error, and Temporary for any
// other error: what was not classified is retried, within the step's bounded
// attempts.
func CategoryOf(err error) Category {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Category
	}
	return Temporary
}
