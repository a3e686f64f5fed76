// Package activities holds the work handoff does against providers, as
// Temporal activities. Each is a method on Activities, takes one input struct
// and returns one result struct, and turns a provider's failure into a typed
// Temporal error: permanent ones are non-retryable with a type name, the rest
// retry with jittered backoff, and an ambiguous one makes the next attempt
// look the record up before creating it again.
package activities

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/activity"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/providers"
)

// Activities holds the provider clients the activities call. Register it with
// a worker as a pointer; workflows refer to its methods through a nil
// *Activities.
type Activities struct {
	CRM        providers.CRM
	Payments   providers.Payments
	Accounting providers.Accounting
	Mailer     providers.Mailer
	// Customers are the systems that keep customer records, by system.
	Customers map[string]providers.Customers
	// News, when set, lets reconciliation hand records to customers'
	// workflows.
	News CustomerNews
	// Orders, when set, lets reconciliation see where orders stand.
	Orders OrderLookup
	// Phases are reconciliation phases added to the order's; a
	// reconciliation runs those its input names (see PhaseNames).
	Phases []Phase
}

// New returns Activities for the given providers; it refuses a missing one.
func New(crm providers.CRM, payments providers.Payments, accounting providers.Accounting, mailer providers.Mailer) (*Activities, error) {
	if crm == nil || payments == nil || accounting == nil || mailer == nil {
		return nil, errors.New("new activities: every provider is required")
	}
	return &Activities{CRM: crm, Payments: payments, Accounting: accounting, Mailer: mailer}, nil
}

// Outcome is what every activity result reports about the step besides its
// own data: the attempt that succeeded and the provider's reference.
type Outcome struct {
	Attempt   int32  `json:"attempt"`
	RemoteRef string `json:"remote_ref"`
}

// StepOutcome returns the outcome; results embed Outcome to share it.
func (o Outcome) StepOutcome() Outcome { return o }

// NewOutcome is the outcome of the activity running in ctx, which made or
// found the remote record ref.
func NewOutcome(ctx context.Context, ref string) Outcome {
	return Outcome{Attempt: activity.GetInfo(ctx).Attempt, RemoteRef: ref}
}

// UpsertCustomerInput is the customer to create or update in the CRM.
type UpsertCustomerInput struct {
	Call  providers.Call
	Email string
	Name  string
}

// UpsertCustomerResult names the CRM contact, and what the order says
// otherwise than the contact, which the CRM owns.
type UpsertCustomerResult struct {
	Outcome
	ContactID   string   `json:"contact_id"`
	Differences []string `json:"differences"`
}

// crmSystem is the system that owns who a customer is.
const crmSystem = "crm"

// UpsertCustomer finds the customer's contact in the CRM by the order's
// e-mail address, or makes it. The CRM owns an existing contact's fields:
// the order does not change them, and says where it differs.
func (a *Activities) UpsertCustomer(ctx context.Context, in UpsertCustomerInput) (UpsertCustomerResult, error) {
	if crm, ok := a.Customers[crmSystem]; ok {
		found, err := crm.FindCustomers(ctx, in.Call, providers.CustomerQuery{Email: action.NormalizeEmail(in.Email)})
		if err != nil {
			return UpsertCustomerResult{}, Fail(ctx, "find customer", err)
		}
		if len(found) > 0 {
			r := found[0] // the oldest
			out := UpsertCustomerResult{Outcome: NewOutcome(ctx, r.ID), ContactID: r.ID}
			if name := r.Fields[action.FieldName]; name != in.Name {
				out.Differences = append(out.Differences, "name: the order's differs from the one the CRM (its owner) keeps; the order left it")
			}
			if len(found) > 1 {
				out.Differences = append(out.Differences, fmt.Sprintf("%d CRM contacts have this e-mail address; the order used the oldest, %s", len(found), r.ID))
			}
			return out, nil
		}
	}
	c, err := a.CRM.UpsertContact(ctx, in.Call, providers.ContactRequest{Email: in.Email, Name: in.Name})
	if err != nil {
		return UpsertCustomerResult{}, Fail(ctx, "upsert customer", err)
	}
	return UpsertCustomerResult{Outcome: NewOutcome(ctx, c.ID), ContactID: c.ID}, nil
}

// CreateChargeInput is the charge to create.
type CreateChargeInput struct {
	Call        providers.Call
	Amount      int64
	Currency    string
	Customer    string
	Email       string
	Description string
}

// CreateChargeResult names the charge and its status when created.
type CreateChargeResult struct {
	Outcome
	ChargeID string `json:"charge_id"`
	Status   string `json:"status"`
}

// CreateCharge creates the charge, or adopts the one an earlier attempt made.
func (a *Activities) CreateCharge(ctx context.Context, in CreateChargeInput) (CreateChargeResult, error) {
	ch, err := AdoptOrCreate(ctx, in.Call, "charge", a.Payments.FindCharge, func() (providers.Charge, error) {
		return a.Payments.CreateCharge(ctx, in.Call, providers.ChargeRequest{
			Amount: in.Amount, Currency: in.Currency, Customer: in.Customer, Email: in.Email, Description: in.Description,
		})
	})
	if err != nil {
		return CreateChargeResult{}, err
	}
	return CreateChargeResult{Outcome: NewOutcome(ctx, ch.ID), ChargeID: ch.ID, Status: ch.Status}, nil
}

// AdoptOrCreate is every create's one path: look the record up by the
// call's external reference (its idempotency key) and adopt it when found,
// else create it. An attempt that timed out may have created it, and an
// operator's retry or a reconciliation starts counting attempts afresh.
func AdoptOrCreate[T any](ctx context.Context, call providers.Call, what string,
	find func(context.Context, providers.Call, string) (T, bool, error), create func() (T, error)) (T, error) {
	rec, found, err := find(ctx, call, call.IdempotencyKey)
	if err != nil {
		return rec, Fail(ctx, "look up "+what, err)
	}
	if found {
		return rec, nil
	}
	rec, err = create()
	if err != nil {
		return rec, Fail(ctx, "create "+what, err)
	}
	return rec, nil
}

// GetChargeInput names the charge to read.
type GetChargeInput struct {
	Call     providers.Call
	ChargeID string
}

// GetChargeResult is the charge's current status.
type GetChargeResult struct {
	Outcome
	Status         string
	FailureCode    string
	FailureMessage string
}

// GetCharge reads the charge's current status.
func (a *Activities) GetCharge(ctx context.Context, in GetChargeInput) (GetChargeResult, error) {
	ch, err := a.Payments.GetCharge(ctx, in.Call, in.ChargeID)
	if err != nil {
		return GetChargeResult{}, Fail(ctx, "get charge", err)
	}
	return GetChargeResult{Outcome: NewOutcome(ctx, ch.ID), Status: ch.Status, FailureCode: ch.FailureCode, FailureMessage: ch.FailureMessage}, nil
}

// CreateInvoiceInput is the invoice to create for a paid charge.
type CreateInvoiceInput struct {
	Call     providers.Call
	Customer string
	Amount   int64
	Currency string
	ChargeID string
	Lines    []providers.InvoiceLine
}

// CreateInvoiceResult names the invoice.
type CreateInvoiceResult struct {
	Outcome
	InvoiceID string `json:"invoice_id"`
}

// CreateInvoice creates the invoice, or adopts the one an earlier attempt made.
func (a *Activities) CreateInvoice(ctx context.Context, in CreateInvoiceInput) (CreateInvoiceResult, error) {
	inv, err := AdoptOrCreate(ctx, in.Call, "invoice", a.Accounting.FindInvoice, func() (providers.Invoice, error) {
		return a.Accounting.CreateInvoice(ctx, in.Call, providers.InvoiceRequest{
			Customer: in.Customer, Amount: in.Amount, Currency: in.Currency, Charge: in.ChargeID, Lines: in.Lines,
		})
	})
	if err != nil {
		return CreateInvoiceResult{}, err
	}
	return CreateInvoiceResult{Outcome: NewOutcome(ctx, inv.ID), InvoiceID: inv.ID}, nil
}

// SendEmailInput is one e-mail to send. A confirmation carries the facts
// it is written from, not its text: the activity writes the message, so a
// workflow's history keeps no more of it than the order already holds.
type SendEmailInput struct {
	Call providers.Call
	To   string
	// Confirmation, when set, is the order confirmation to write.
	Confirmation *Confirmation `json:",omitempty"`
	// Subject and Text are a message written in full by the caller, as
	// orders begun by earlier releases scheduled it; they win over
	// Confirmation when set.
	Subject string `json:",omitempty"`
	Text    string `json:",omitempty"`
}

// Confirmation is what an order's confirmation e-mail says: the order, the
// payment received and, when known, the customer's name and the invoice.
type Confirmation struct {
	OrderID   string
	Name      string `json:",omitempty"`
	Amount    int64
	Currency  string
	InvoiceID string `json:",omitempty"`
}

// Message writes the confirmation's subject and text.
func (c Confirmation) Message() (subject, text string) {
	paid := fmt.Sprintf("We received your payment of %d.%02d %s.", c.Amount/100, c.Amount%100, c.Currency)
	subject = "Your order " + c.OrderID
	if c.Name == "" {
		return subject, "Thank you for your order. " + paid + "\n"
	}
	text = fmt.Sprintf("Hello %s,\n\nthank you for your order %s. %s\n", c.Name, c.OrderID, paid)
	if c.InvoiceID != "" {
		text += "Your invoice: " + c.InvoiceID + ".\n"
	}
	return subject, text
}

// message is the e-mail the input asks for.
func (in SendEmailInput) message() providers.MessageRequest {
	m := providers.MessageRequest{To: in.To, Subject: in.Subject, Text: in.Text}
	if in.Text == "" && in.Confirmation != nil {
		m.Subject, m.Text = in.Confirmation.Message()
	}
	return m
}

// SendEmailResult names the sent message.
type SendEmailResult struct {
	Outcome
	MessageID string
}

// SendEmail sends the e-mail, or adopts the one an earlier attempt sent.
func (a *Activities) SendEmail(ctx context.Context, in SendEmailInput) (SendEmailResult, error) {
	m, err := AdoptOrCreate(ctx, in.Call, "e-mail", a.Mailer.FindMessage, func() (providers.Message, error) {
		return a.Mailer.SendMessage(ctx, in.Call, in.message())
	})
	if err != nil {
		return SendEmailResult{}, err
	}
	return SendEmailResult{Outcome: NewOutcome(ctx, m.ID), MessageID: m.ID}, nil
}

// RefundChargeInput names the charge to refund in full.
type RefundChargeInput struct {
	Call     providers.Call
	ChargeID string
}

// RefundChargeResult names the refund.
type RefundChargeResult struct {
	Outcome
	RefundID string
}

// RefundCharge refunds a charge in full, or adopts a refund of it that
// exists already: one an earlier attempt made, or one a person made at the
// provider. Its idempotency key makes it happen once, however often it is
// retried, and the look-up first keeps a provider that forgot the key from
// answering a second refund with a permanent error.
func (a *Activities) RefundCharge(ctx context.Context, in RefundChargeInput) (RefundChargeResult, error) {
	find := func(ctx context.Context, call providers.Call, _ string) (providers.Refund, bool, error) {
		return a.Payments.FindRefund(ctx, call, in.ChargeID)
	}
	re, err := AdoptOrCreate(ctx, in.Call, "refund", find, func() (providers.Refund, error) {
		return a.Payments.RefundCharge(ctx, in.Call, providers.RefundRequest{Charge: in.ChargeID})
	})
	if err != nil {
		return RefundChargeResult{}, err
	}
	return RefundChargeResult{Outcome: NewOutcome(ctx, re.ID), RefundID: re.ID}, nil
}

// CancelChargeInput names the charge to cancel.
type CancelChargeInput struct {
	Call     providers.Call
	ChargeID string
}

// CancelChargeResult is the charge as it stands after the cancellation:
// canceled, or settled when it settled first, or still pending when the
// provider cannot cancel it yet.
type CancelChargeResult struct {
	Outcome
	Status      string
	FailureCode string
}

// CancelCharge cancels a charge that has not settled, so that an order that
// is being undone cannot take money any more.
func (a *Activities) CancelCharge(ctx context.Context, in CancelChargeInput) (CancelChargeResult, error) {
	ch, err := a.Payments.CancelCharge(ctx, in.Call, in.ChargeID)
	if err != nil {
		return CancelChargeResult{}, Fail(ctx, "cancel charge", err)
	}
	return CancelChargeResult{Outcome: NewOutcome(ctx, ch.ID), Status: ch.Status, FailureCode: ch.FailureCode}, nil
}

// VoidInvoiceInput names the invoice to void.
type VoidInvoiceInput struct {
	Call      providers.Call
	InvoiceID string
}

// VoidInvoiceResult is the voided invoice.
type VoidInvoiceResult struct {
	Outcome
	Status string
}

// VoidInvoice voids an invoice; voiding it again changes nothing.
func (a *Activities) VoidInvoice(ctx context.Context, in VoidInvoiceInput) (VoidInvoiceResult, error) {
	inv, err := a.Accounting.VoidInvoice(ctx, in.Call, in.InvoiceID)
	if err != nil {
		return VoidInvoiceResult{}, Fail(ctx, "void invoice", err)
	}
	return VoidInvoiceResult{Outcome: NewOutcome(ctx, inv.ID), Status: inv.Status}, nil
}

// FindChargeInput names the charge by the call's idempotency key, which is
// its external reference.
type FindChargeInput struct {
	Call providers.Call
}

// FindChargeResult is the charge, if one exists.
type FindChargeResult struct {
	Outcome
	Found    bool
	ChargeID string
	Status   string
}

// FindCharge looks the order's charge up by its external reference, for a
// cancelled order that may have charged without knowing it.
func (a *Activities) FindCharge(ctx context.Context, in FindChargeInput) (FindChargeResult, error) {
	ch, found, err := a.Payments.FindCharge(ctx, in.Call, in.Call.IdempotencyKey)
	if err != nil {
		return FindChargeResult{}, Fail(ctx, "look up charge", err)
	}
	return FindChargeResult{Outcome: NewOutcome(ctx, ch.ID), Found: found, ChargeID: ch.ID, Status: ch.Status}, nil
}
