package action

// Status is where an action stands, as the API reports it and the
// HandoffStatus search attribute holds it.
type Status string

// Action statuses.
const (
	StatusProcessing      Status = "processing"
	StatusAwaitingPayment Status = "awaiting_payment"
	StatusCompleted       Status = "completed"
	StatusNeedsAttention  Status = "needs_attention"
	StatusCancelling      Status = "cancelling"
	StatusCancelled       Status = "cancelled"
	StatusRejected        Status = "rejected"
	// StatusSynced is a customer every system holds at its owners' values,
	// as far as handoff has heard; it stays open for the next change.
	StatusSynced Status = "synced"
)

// Statuses lists every action status.
var Statuses = []Status{StatusProcessing, StatusAwaitingPayment, StatusCompleted, StatusNeedsAttention, StatusCancelling, StatusCancelled, StatusRejected, StatusSynced}

// Final reports whether an action in this status has ended.
func (s Status) Final() bool {
	return s == StatusCompleted || s == StatusCancelled || s == StatusRejected
}

// StepStatus is where one step of an action stands.
type StepStatus string

// Step statuses.
const (
	StepPending   StepStatus = "pending"
	StepRunning   StepStatus = "running"
	StepWaiting   StepStatus = "waiting"
	StepSucceeded StepStatus = "succeeded"
	StepFailed    StepStatus = "failed"
	StepSkipped   StepStatus = "skipped"
)

// Done reports whether the step succeeded or was skipped.
func (s StepStatus) Done() bool { return s == StepSucceeded || s == StepSkipped }
