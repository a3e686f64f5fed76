package providers

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/redact"
)

// Error is a classified failure of one provider call.
type Error struct {
	System    string
	Operation string
	Category  action.Category
	// Type names the failure for Temporal and for operators.
	Type string
	// Status is the HTTP status, 0 when no answer came.
	Status int
	// Code and Message are the provider's own, when it sent them.
	Code    string
	Message string
	// RetryAfter is the provider's Retry-After in seconds, 0 when absent.
	RetryAfter int
	// Final marks an ambiguous outcome that neither a retry nor a look-up
	// can settle (an e-mail whose acceptance went unanswered, where the
	// provider offers no look-up): the step parks for an operator instead
	// of being tried again.
	Final bool
	Err   error
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
	category action.Category
	typ      string
}{
	http.StatusBadRequest:          {action.CategoryPermanent, action.TypeInvalidInput},
	http.StatusUnauthorized:        {action.CategoryPermanent, action.TypeUnauthorized},
	http.StatusForbidden:           {action.CategoryPermanent, action.TypeForbidden},
	http.StatusNotFound:            {action.CategoryPermanent, action.TypeNotFound},
	http.StatusConflict:            {action.CategoryPermanent, action.TypeConflict},
	http.StatusUnprocessableEntity: {action.CategoryPermanent, action.TypeInvalidInput},
	http.StatusPreconditionFailed:  {action.CategoryPermanent, action.TypeStaleRecord},
	http.StatusRequestTimeout:      {action.CategoryTemporary, action.TypeTemporary},
	http.StatusTooManyRequests:     {action.CategoryTemporary, action.TypeTemporary},
	http.StatusInternalServerError: {action.CategoryTemporary, action.TypeTemporary},
	http.StatusBadGateway:          {action.CategoryTemporary, action.TypeTemporary},
	http.StatusServiceUnavailable:  {action.CategoryTemporary, action.TypeTemporary},
	http.StatusGatewayTimeout:      {action.CategoryTemporary, action.TypeTemporary},
}

// errorTypeTable classifies by the error type a provider names in its answer
// (Stripe's types, which the sandbox uses too); it takes precedence over the
// status, as Stripe advises. A type not listed is classified by status.
var errorTypeTable = map[string]struct {
	category action.Category
	typ      string
}{
	"card_error":           {action.CategoryPermanent, action.TypeCardDeclined},
	"idempotency_error":    {action.CategoryPermanent, action.TypeConflict},
	"authentication_error": {action.CategoryPermanent, action.TypeUnauthorized},
	"rate_limit_error":     {action.CategoryTemporary, action.TypeTemporary},
	"api_error":            {action.CategoryTemporary, action.TypeTemporary},
}

// Classify maps a non-2xx answer to its category and type name: by the
// provider's error type when it names a known one, else by status.
func Classify(status int, errorType string) (action.Category, string) {
	if c, ok := errorTypeTable[errorType]; ok {
		return c.category, c.typ
	}
	return ClassifyStatus(status)
}

// ClassifyStatus maps a non-2xx HTTP status to its category and type name.
func ClassifyStatus(status int) (action.Category, string) {
	if c, ok := statusTable[status]; ok {
		return c.category, c.typ
	}
	if status >= 500 {
		return action.CategoryTemporary, action.TypeTemporary
	}
	return action.CategoryPermanent, action.TypeUnsupported
}

// CategoryOf returns the category of a provider error, and Temporary for any
// other error: what was not classified is retried, within the step's bounded
// attempts.
func CategoryOf(err error) action.Category {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Category
	}
	return action.CategoryTemporary
}
