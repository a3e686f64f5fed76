package workflows

import (
	"slices"

	"github.com/handoff-hq/handoff/activities"
	"github.com/handoff-hq/handoff/system"
)

// Skip says whether an operator may skip a step that waits for an answer.
type Skip int

const (
	// SkipNever: the action cannot go on without the step; retry or abort.
	SkipNever Skip = iota
	// SkipAnytime: the action can go on without it.
	SkipAnytime
	// SkipWithReason: a step that undoes a cancelled action and cannot
	// finish by itself (the refund was made by hand, the provider lost the
	// record); skipping it needs a reason, which is recorded on the step.
	SkipWithReason
)

// StepSpec declares one step of a business action: the system it talks to
// (whose task queue runs its activities), its activities, whether an operator
// may skip it, the step that undoes it when the action is cancelled, and
// the reconciliation difference its activity repairs. Parking, operators'
// answers, compensation, reconciliation and the workers read these tables
// instead of listing steps themselves.
type StepSpec struct {
	Name   string
	System system.System
	// Activities name the step's activities, as registered: the one it
	// runs, and any it looks records up with.
	Activities []string
	Skip       Skip
	// Repeats marks a step that runs more than once (polling, or undoing):
	// it is never "done already".
	Repeats bool
	// Compensation names the step that undoes this one when the action is
	// cancelled; empty when nothing needs undoing.
	Compensation string
	// Repairs names the reconciliation difference the step's activity
	// repairs, with the step's own idempotency key; empty for none.
	Repairs string
}

// Steps is a business action's table of steps: the steps it runs, in
// order, then the steps that undo them.
type Steps []StepSpec

// Spec returns the named step's declaration; an unknown name gets a step
// without a system.
func (t Steps) Spec(name string) StepSpec {
	if i := slices.IndexFunc(t, func(s StepSpec) bool { return s.Name == name }); i >= 0 {
		return t[i]
	}
	return StepSpec{Name: name}
}

// Repairing returns the step that repairs a difference of the given kind.
func (t Steps) Repairing(kind string) (StepSpec, bool) {
	i := slices.IndexFunc(t, func(s StepSpec) bool { return s.Repairs == kind })
	if i < 0 {
		return StepSpec{}, false
	}
	return t[i], true
}

// OrderSteps is placing an order: the customer, the charge, its payment,
// the invoice and the confirmation, and the steps that undo them.
var OrderSteps = Steps{
	{Name: StepCustomer, System: system.CRM, Activities: []string{"UpsertCustomer"}, Skip: SkipAnytime},
	{Name: StepCharge, System: system.Payments, Activities: []string{"CreateCharge"}, Compensation: StepCancelCharge},
	{Name: StepPayment, System: system.Payments, Activities: []string{"GetCharge"}, Repeats: true, Compensation: StepCancelCharge},
	{Name: StepInvoice, System: system.Accounting, Activities: []string{"CreateInvoice"}, Skip: SkipAnytime, Compensation: StepVoidInvoice, Repairs: activities.DiffInvoiceMissing},
	{Name: StepConfirmation, System: system.Mail, Activities: []string{"SendEmail"}, Skip: SkipAnytime, Repairs: activities.DiffEmailMissing},
	{Name: StepVoidInvoice, System: system.Accounting, Activities: []string{"VoidInvoice"}, Skip: SkipWithReason, Repeats: true},
	{Name: StepCancelCharge, System: system.Payments, Activities: []string{"CancelCharge", "FindCharge"}, Skip: SkipWithReason, Repeats: true},
	{Name: StepRefund, System: system.Payments, Activities: []string{"RefundCharge", "FindCharge"}, Skip: SkipWithReason, Repeats: true},
}
