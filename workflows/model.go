// Package workflows holds handoff's deterministic workflow code — the order
// workflow, its state, statuses and search attributes — and the business
// data the workflows carry. Workflows name activities through the
// activities.Activities type and never do I/O themselves.
package workflows

import (
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/handoff-hq/handoff/providers"
)

// TaskQueue is where handoff's workflows run.
const TaskQueue = "handoff"

// ProviderTaskQueue is where the activities of one system run, so that a slow
// or failing provider holds up only its own queue.
func ProviderTaskQueue(system string) string { return "handoff-" + system }

// QueryOrderState is the query that returns an order's OrderState.
const QueryOrderState = "order_state"

// MaxStepAttempts bounds how often one step is tried before it needs attention.
const MaxStepAttempts = 8

// maxPaymentPollInterval caps the pause between two looks at a pending charge.
const maxPaymentPollInterval = 10 * time.Second

// Order statuses, as the API reports them.
const (
	StatusProcessing      = "processing"
	StatusAwaitingPayment = "awaiting_payment"
	StatusCompleted       = "completed"
	StatusNeedsAttention  = "needs_attention"
	StatusCancelling      = "cancelling"
	StatusCancelled       = "cancelled"
	StatusRejected        = "rejected"
)

// Step statuses.
const (
	StepPending   = "pending"
	StepRunning   = "running"
	StepWaiting   = "waiting"
	StepSucceeded = "succeeded"
	StepFailed    = "failed"
	StepSkipped   = "skipped"
)

// Error categories recorded on a failed step.
const (
	CategoryTemporary = "temporary"
	CategoryPermanent = "permanent"
	CategoryAmbiguous = "ambiguous"
	CategoryDeclined  = "declined"
)

// Search attributes handoff sets on its workflows, so that the Web UI and
// the API can find, for example, every parked payment step.
var (
	SearchStatus        = temporal.NewSearchAttributeKeyKeyword("HandoffStatus")
	SearchStep          = temporal.NewSearchAttributeKeyKeyword("HandoffStep")
	SearchErrorCategory = temporal.NewSearchAttributeKeyKeyword("HandoffErrorCategory")
	SearchProvider      = temporal.NewSearchAttributeKeyKeyword("HandoffProvider")
	SearchBusinessKey   = temporal.NewSearchAttributeKeyKeyword("HandoffBusinessKey")
)

// SearchAttributes lists every custom search attribute handoff needs
// registered in its namespace.
var SearchAttributes = []temporal.SearchAttributeKeyKeyword{
	SearchStatus, SearchStep, SearchErrorCategory, SearchProvider, SearchBusinessKey,
}

// OrderState is what GET /v1/orders/{order_id} returns.
type OrderState struct {
	OrderID       string    `json:"order_id"`
	Status        string    `json:"status"`
	Steps         []Step    `json:"steps"`
	CorrelationID string    `json:"correlation_id"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// Step is the progress of one step of an action.
type Step struct {
	Name      string     `json:"name"`
	Status    string     `json:"status"`
	Attempts  int        `json:"attempts"`
	LastError *StepError `json:"last_error"`
	RemoteRef string     `json:"remote_ref"`
	// Resolution is the operator's last answer to the step when it waited
	// for one: retry, skip or abort, with the reason given.
	Resolution *Resolution `json:"resolution,omitempty"`
}

// Resolution is an operator's answer to a parked step.
type Resolution struct {
	Action string `json:"action"`
	Reason string `json:"reason,omitempty"`
}

// StepError is the last failure of a step.
type StepError struct {
	Category string `json:"category"`
	Message  string `json:"message"`
}

// Order is the business action "place an order", as the application sends it.
// Amounts are in minor units (cents).
type Order struct {
	OrderID  string   `json:"order_id"`
	Customer Customer `json:"customer"`
	Currency string   `json:"currency"`
	Amount   int64    `json:"amount"`
	Items    []Item   `json:"items"`
}

// Customer is who places the order.
type Customer struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

// Item is one line of an order.
type Item struct {
	SKU        string `json:"sku"`
	Quantity   int64  `json:"quantity"`
	UnitAmount int64  `json:"unit_amount"`
}

// FieldError names one invalid field of a request.
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

var (
	orderIDPattern  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
	currencyPattern = regexp.MustCompile(`^[a-z]{3}$`)
)

// maxItems bounds an order's lines.
const maxItems = 1000

// maxAmount keeps amounts and their sums far from overflow.
const maxAmount = 1 << 40

// Normalize trims and lower-cases what has one canonical form, so that the
// same order sent twice is recognised as the same.
func (o Order) Normalize() Order {
	o.OrderID = strings.TrimSpace(o.OrderID)
	o.Customer.Email = strings.TrimSpace(o.Customer.Email)
	o.Customer.Name = strings.TrimSpace(o.Customer.Name)
	o.Currency = strings.ToLower(strings.TrimSpace(o.Currency))
	items := make([]Item, len(o.Items))
	for i, it := range o.Items {
		it.SKU = strings.TrimSpace(it.SKU)
		items[i] = it
	}
	o.Items = items
	return o
}

// Validate reports every invalid field of a normalized order.
func (o Order) Validate() []FieldError {
	var errs []FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Detail: fmt.Sprintf(format, args...)})
	}
	if !orderIDPattern.MatchString(o.OrderID) {
		add("order_id", "must be 1 to 128 letters, digits or . _ : - and start with a letter or digit")
	}
	errs = append(errs, o.Customer.Validate()...)
	if !currencyPattern.MatchString(o.Currency) {
		add("currency", "must be a three-letter ISO 4217 code")
	}
	if o.Amount <= 0 || o.Amount > maxAmount {
		add("amount", "must be a positive number of minor units")
	}
	if len(o.Items) == 0 || len(o.Items) > maxItems {
		add("items", "must list 1 to %d items", maxItems)
	}
	var sum int64
	for i, it := range o.Items {
		field := fmt.Sprintf("items[%d]", i)
		if it.SKU == "" {
			add(field+".sku", "is required")
		}
		if it.Quantity <= 0 || it.Quantity > 1_000_000 {
			add(field+".quantity", "must be between 1 and 1000000")
		}
		if it.UnitAmount < 0 || it.UnitAmount > maxAmount {
			add(field+".unit_amount", "must be zero or a positive number of minor units")
		}
		// Saturate so that no sum of valid lines can overflow.
		sum = min(sum+min(max(it.Quantity, 0), 1_000_000)*min(max(it.UnitAmount, 0), maxAmount), maxAmount+1)
	}
	if len(errs) == 0 && sum != o.Amount {
		add("amount", "is %d but the items add up to %d", o.Amount, sum)
	}
	return errs
}

func (o Order) invoiceLines() []providers.InvoiceLine {
	lines := make([]providers.InvoiceLine, 0, len(o.Items))
	for _, it := range o.Items {
		lines = append(lines, providers.InvoiceLine{SKU: it.SKU, Quantity: it.Quantity, UnitAmount: it.UnitAmount})
	}
	return lines
}

// Validate reports every invalid field of normalized customer details.
// It is not for workflow code: net/mail is not deterministic to the checker.
func (c Customer) Validate() []FieldError {
	var errs []FieldError
	if addr, err := mail.ParseAddress(c.Email); err != nil || addr.Address != c.Email {
		errs = append(errs, FieldError{Field: "customer.email", Detail: "must be an e-mail address"})
	}
	if c.Name == "" {
		errs = append(errs, FieldError{Field: "customer.name", Detail: "is required"})
	}
	return errs
}

// OrderWorkflowID is the workflow ID of an order: its business key.
func OrderWorkflowID(orderID string) string { return "order/" + orderID }

// LatePaymentWorkflowID is the workflow that refunds a charge which
// succeeded after its order had ended without it: one per order and charge.
func LatePaymentWorkflowID(orderID, chargeID string) string {
	return OrderWorkflowID(orderID) + "/late-payment/" + chargeID
}

// Memo keys set on an action's workflow.
const (
	// MemoRequestHash identifies the placed order's content; MemoCorrelationID
	// is its correlation id.
	MemoRequestHash   = "request_hash"
	MemoCorrelationID = "correlation_id"
	// MemoAwaitingOrder marks a workflow an early provider event started.
	MemoAwaitingOrder = "awaiting_order"
	// MemoState holds the order's OrderState as of its last change of
	// status, so that it can be read without a worker.
	MemoState = "state"
)
