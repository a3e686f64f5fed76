// Package workflows holds handoff's deterministic workflow code — the order
// workflow, its state and search attributes, operators' updates,
// compensation, the provider control and reconciliation. Workflows name
// activities through the activities.Activities type and never do I/O
// themselves.
package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/providers"
)

// TaskQueue is where handoff's workflows run.
const TaskQueue = "handoff"

// QueryOrderState is the query that returns an order's OrderState.
const QueryOrderState = "order_state"

// MaxStepAttempts bounds how often one step is tried before it needs attention.
const MaxStepAttempts = 8

// maxPaymentPollInterval caps the pause between two looks at a pending charge.
const maxPaymentPollInterval = 10 * time.Second

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
	OrderID       string        `json:"order_id"`
	Status        action.Status `json:"status"`
	Steps         []Step        `json:"steps"`
	CorrelationID string        `json:"correlation_id"`
	UpdatedAt     time.Time     `json:"updated_at"`
}

// Step is the progress of one step of an action.
type Step struct {
	Name      string            `json:"name"`
	Status    action.StepStatus `json:"status"`
	Attempts  int               `json:"attempts"`
	LastError *StepError        `json:"last_error"`
	RemoteRef string            `json:"remote_ref"`
	// Resolution is the operator's last answer to the step when it waited
	// for one: retry, skip or abort, with the reason given.
	Resolution *Resolution `json:"resolution,omitempty"`
	// Notes say what the step found and left alone, such as a customer
	// field its owner keeps at another value than the order's.
	Notes []string `json:"notes,omitempty"`
}

// Resolution is an operator's answer to a parked step.
type Resolution struct {
	Action string `json:"action"`
	Reason string `json:"reason,omitempty"`
}

// StepError is the last failure of a step.
type StepError struct {
	Category action.Category `json:"category"`
	Message  string          `json:"message"`
}

func invoiceLines(o action.Order) []providers.InvoiceLine {
	lines := make([]providers.InvoiceLine, 0, len(o.Items))
	for _, it := range o.Items {
		lines = append(lines, providers.InvoiceLine{SKU: it.SKU, Quantity: it.Quantity, UnitAmount: it.UnitAmount})
	}
	return lines
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
	// MemoRevision is the order's revision (OrderInput.Revision), set at
	// start; absent for orders an earlier release started.
	MemoRevision = "revision"
)
