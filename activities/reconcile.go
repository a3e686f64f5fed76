package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/providers"
	"go.temporal.io/sdk/activity"
)

// Kinds of difference reconciliation finds. Safe ones are repaired with the
// order's own idempotent activities; the rest are flagged for a person.
const (
	DiffInvoiceMissing       = "invoice_missing"
	DiffEmailMissing         = "email_missing"
	DiffAmountMismatch       = "amount_mismatch"
	DiffDuplicateInvoices    = "duplicate_invoices"
	DiffDuplicateEmails      = "duplicate_emails"
	DiffCustomerMissing      = "customer_missing"
	DiffInvoiceWithoutCharge = "invoice_without_charge"
	DiffInvoiceVoided        = "invoice_void_for_paid_charge"
	DiffInvoiceForRefund     = "invoice_for_refunded_charge"
)

// OrderLookup tells reconciliation where orders' workflows stand, so that it
// repairs only orders that finished (or that handoff never ran).
type OrderLookup interface {
	OrderStandings(ctx context.Context, keys []string) (map[string]OrderStanding, error)
}

// OrderStanding is where one order's workflow stands.
type OrderStanding struct {
	Exists  bool
	Running bool
	Status  action.Status
	// Skipped lists the steps an operator skipped.
	Skipped []string
}

// OrderStandingsInput names orders by key ("order/<id>").
type OrderStandingsInput struct {
	Keys []string
}

// OrderStandingsResult is the standing of each order asked about.
type OrderStandingsResult struct {
	Standings map[string]OrderStanding
}

// OrderStandings reports where orders' workflows stand. Without an
// OrderLookup every order counts as unknown to handoff.
func (a *Activities) OrderStandings(ctx context.Context, in OrderStandingsInput) (OrderStandingsResult, error) {
	if a.Orders == nil {
		return OrderStandingsResult{Standings: map[string]OrderStanding{}}, nil
	}
	s, err := a.Orders.OrderStandings(ctx, in.Keys)
	if err != nil {
		return OrderStandingsResult{}, Fail(ctx, "read order standings", err)
	}
	return OrderStandingsResult{Standings: s}, nil
}

// Reconciliation phases: charges against invoices, e-mails and contacts,
// then invoices against charges.
const (
	PhaseCharges  = "charges"
	PhaseInvoices = "invoices"
)

// Difference is one way two systems disagree about an action.
type Difference struct {
	Kind string
	Safe bool
	// OrderKey is the key of the action the records belong to
	// ("order/<id>"); empty when none can be told.
	OrderKey string
	Refs     []string
	Reason   string
	// Repair, for a safe difference, is the call that repairs it.
	Repair *Repair `json:",omitempty"`
	// What a repair of an order needs: the paid charge's facts (read by
	// reconciliations begun before Repair). Email is set only in their
	// histories: a repair's input carries the address it needs.
	ChargeID string
	Customer string
	Email    string
	Currency string
	Amount   int64
}

// Repair is the activity call that repairs a safe difference: the action's
// own activity with the action's own idempotency key (the step key), so
// that repairing twice creates nothing twice.
type Repair struct {
	// Step is the action's step the repair stands in for; an operator who
	// skipped that step keeps the repair from happening.
	Step string
	// System runs the activity on its queue.
	System   string
	Activity string
	Input    json.RawMessage
}

// NewRepair encodes a repair's input.
func NewRepair(step, system, activity string, input any) (*Repair, error) {
	raw, err := json.Marshal(input)
	if err != nil {
		return nil, fmt.Errorf("encode the repair of %s: %w", step, err)
	}
	return &Repair{Step: step, System: system, Activity: activity, Input: raw}, nil
}

// Comparer compares one page of one reconciliation phase: it lists records
// of one system from the cursor, looks the others up, and reports the
// differences, each safe one with its repair.
type Comparer func(ctx context.Context, in ComparePageInput) (ComparePageResult, error)

// Phase is a reconciliation phase a deployment adds to the order's
// (Activities.Phases): its name and its comparer.
type Phase struct {
	Name    string
	Compare Comparer
}

// PhaseNames lists the reconciliation phases of the activities in the
// order they run: the order's (charges, then invoices), then those added.
func PhaseNames(a *Activities) []string {
	names := []string{PhaseCharges, PhaseInvoices}
	for _, p := range a.Phases {
		names = append(names, p.Name)
	}
	return names
}

// ComparePageInput is one page of one phase.
type ComparePageInput struct {
	Phase  string
	Cursor string
	Limit  int
	// Before excludes charges created after it: orders still in flight are
	// not differences yet. After excludes records created before it: the
	// look-back window.
	Before time.Time
	After  time.Time
}

// ComparePageResult is what one page compared and found.
type ComparePageResult struct {
	Charges  int
	Invoices int
	Messages int
	Contacts int
	// Records counts, by kind, the records of added phases.
	Records     map[string]int `json:",omitempty"`
	Differences []Difference
	NextCursor  string
	// NotCompared names what could not be compared because the provider
	// cannot be searched.
	NotCompared []string `json:",omitempty"`
}

// page is the provider page the input asks for.
func (in ComparePageInput) page() providers.Page {
	return providers.Page{Cursor: in.Cursor, Limit: in.Limit, After: in.After, Before: in.Before}
}

// InWindow reports whether a record created at the given unix second lies
// in the page's window; a record that does not say when it was created is
// compared.
func (in ComparePageInput) InWindow(created int64) bool {
	if created == 0 {
		return true
	}
	t := time.Unix(created, 0)
	return !t.After(in.Before) && (in.After.IsZero() || !t.Before(in.After))
}

// reconcileCorrelation is the correlation id of reconciliation's calls and
// of the repairs they lead to: the reconciliation run's workflow id, so
// that one run's calls are found together in the logs.
func reconcileCorrelation(ctx context.Context) string {
	if activity.IsActivity(ctx) {
		return activity.GetInfo(ctx).WorkflowExecution.ID
	}
	return "reconcile"
}

// orderOf is the order a record belongs to, read from its external
// reference (the step key that made it, "order/<id>/<step>").
func orderOf(ref string) (action.Key, bool) {
	k, err := action.ParseStepKey(ref)
	if err != nil || k.Action.Kind != action.KindOrder {
		return action.Key{}, false
	}
	return k.Action, true
}

// ComparePage compares one page of records with the other systems, holding
// no more than that page in memory.
func (a *Activities) ComparePage(ctx context.Context, in ComparePageInput) (ComparePageResult, error) {
	var res ComparePageResult
	var err error
	i := slices.IndexFunc(a.Phases, func(p Phase) bool { return p.Name == in.Phase })
	switch added := i >= 0; {
	case in.Phase == PhaseCharges:
		res, err = a.compareCharges(ctx, in)
	case in.Phase == PhaseInvoices:
		res, err = a.compareInvoices(ctx, in)
	case added:
		res, err = a.Phases[i].Compare(ctx, in)
	default:
		err = fmt.Errorf("unknown phase %q", in.Phase)
	}
	if err != nil {
		return ComparePageResult{}, Fail(ctx, "compare "+in.Phase, err)
	}
	return res, nil
}

var errCannotList = errors.New("the configured provider cannot be listed for reconciliation")

// notComparedMessages is reported when the mail provider cannot be searched.
const notComparedMessages = "confirmation e-mails: the configured mail provider cannot be searched"

func (a *Activities) listers() (providers.ChargeLister, providers.InvoiceLister, providers.MessageFinder, providers.ContactFinder, error) {
	charges, ok1 := a.Payments.(providers.ChargeLister)
	invoices, ok2 := a.Accounting.(providers.InvoiceLister)
	// A mail provider that cannot be searched (SMTP) leaves the
	// confirmations uncompared rather than the whole run undone.
	messages, _ := a.Mailer.(providers.MessageFinder)
	contacts, ok4 := a.CRM.(providers.ContactFinder)
	if !ok1 || !ok2 || !ok4 {
		return nil, nil, nil, nil, &providers.Error{Category: action.CategoryPermanent, Type: action.TypeUnsupported, Err: errCannotList}
	}
	return charges, invoices, messages, contacts, nil
}

func (a *Activities) compareCharges(ctx context.Context, in ComparePageInput) (ComparePageResult, error) {
	chargeLister, invoiceLister, messageFinder, contactFinder, err := a.listers()
	if err != nil {
		return ComparePageResult{}, err
	}
	call := providers.Call{CorrelationID: reconcileCorrelation(ctx)}
	charges, next, err := chargeLister.ListCharges(ctx, call, in.page())
	if err != nil {
		return ComparePageResult{}, err
	}
	res := ComparePageResult{Charges: len(charges), NextCursor: next}
	var paid []providers.Charge
	var invoiceRefs, messageRefs, contactIDs []string
	for _, ch := range charges {
		key, ok := orderOf(ch.ExternalRef)
		if !ok || ch.Status != providers.ChargeSucceeded || !in.InWindow(ch.Created) {
			continue
		}
		paid = append(paid, ch)
		invoiceRefs = append(invoiceRefs, key.Step(action.OrderStepInvoice).String())
		messageRefs = append(messageRefs, key.Step(action.OrderStepConfirmation).String())
		if ch.Customer != "" {
			contactIDs = append(contactIDs, ch.Customer)
		}
	}
	invoices, err := invoiceLister.FindInvoicesByRefs(ctx, call, invoiceRefs)
	if err != nil {
		return ComparePageResult{}, err
	}
	var messages []providers.Message
	if messageFinder == nil {
		res.NotCompared = append(res.NotCompared, notComparedMessages)
	} else if messages, err = messageFinder.FindMessagesByRefs(ctx, call, messageRefs); err != nil {
		return ComparePageResult{}, err
	}
	contacts, err := contactFinder.FindContactsByIDs(ctx, call, contactIDs)
	if err != nil {
		return ComparePageResult{}, err
	}
	res.Invoices, res.Messages, res.Contacts = len(invoices), len(messages), len(contacts)
	invoicesByRef := map[string][]providers.Invoice{}
	for _, inv := range invoices {
		invoicesByRef[inv.ExternalRef] = append(invoicesByRef[inv.ExternalRef], inv)
	}
	messagesByRef := map[string]int{}
	for _, m := range messages {
		messagesByRef[m.ExternalRef]++
	}
	contactExists := map[string]bool{}
	for _, c := range contacts {
		contactExists[c.ID] = true
	}
	for _, ch := range paid {
		diffs := chargeDifferences(ch, invoicesByRef, messagesByRef, contactExists, reconcileCorrelation(ctx))
		if messageFinder == nil {
			diffs = slices.DeleteFunc(diffs, func(d Difference) bool { return d.Kind == DiffEmailMissing || d.Kind == DiffDuplicateEmails })
		}
		res.Differences = append(res.Differences, diffs...)
	}
	return res, nil
}

// chargeDifferences states the rules for one paid charge: exactly one
// invoice with its amount and currency, one confirmation e-mail, and its
// customer in the CRM.
//
// Repairs carry the reconciliation run's correlation id.
func chargeDifferences(ch providers.Charge, invoicesByRef map[string][]providers.Invoice, messagesByRef map[string]int, contactExists map[string]bool, correlation string) []Difference {
	key, _ := orderOf(ch.ExternalRef)
	base := Difference{OrderKey: key.String(), ChargeID: ch.ID, Customer: ch.Customer, Currency: ch.Currency, Amount: ch.Amount}
	var out []Difference
	add := func(kind string, safe bool, reason string, refs ...string) {
		d := base
		d.Kind, d.Safe, d.Reason, d.Refs = kind, safe, reason, append([]string{ch.ExternalRef}, refs...)
		out = append(out, d)
	}
	invs := invoicesByRef[key.Step(action.OrderStepInvoice).String()]
	switch {
	case len(invs) == 0:
		add(DiffInvoiceMissing, true, "a succeeded charge has no invoice")
		out[len(out)-1].Repair, _ = NewRepair(action.OrderStepInvoice, "accounting", "CreateInvoice", CreateInvoiceInput{
			Call:     providers.Call{IdempotencyKey: key.Step(action.OrderStepInvoice).String(), CorrelationID: correlation},
			Customer: ch.Customer, Amount: ch.Amount, Currency: ch.Currency, ChargeID: ch.ID,
			Lines: []providers.InvoiceLine{{SKU: "order", Quantity: 1, UnitAmount: ch.Amount}},
		})
	case len(invs) == 1 && invs[0].Status == "void":
		add(DiffInvoiceVoided, false, "a succeeded charge's only invoice is void: a refund may be missing", invs[0].ID)
	case len(invs) > 1:
		var ids []string
		for _, inv := range invs {
			ids = append(ids, inv.ID)
		}
		add(DiffDuplicateInvoices, false, fmt.Sprintf("%d invoices for one charge", len(invs)), ids...)
	case invs[0].Status != "void" && (invs[0].Amount != ch.Amount || invs[0].Currency != ch.Currency):
		add(DiffAmountMismatch, false, fmt.Sprintf("charge %d %s, invoice %d %s", ch.Amount, ch.Currency, invs[0].Amount, invs[0].Currency), invs[0].ID)
	}
	switch n := messagesByRef[key.Step(action.OrderStepConfirmation).String()]; {
	case n == 0 && ch.Email != "":
		add(DiffEmailMissing, true, "a paid order has no confirmation e-mail")
		out[len(out)-1].Repair, _ = NewRepair(action.OrderStepConfirmation, "mail", "SendEmail", SendEmailInput{
			Call:         providers.Call{IdempotencyKey: key.Step(action.OrderStepConfirmation).String(), CorrelationID: correlation},
			To:           ch.Email,
			Confirmation: &Confirmation{OrderID: key.String(), Amount: ch.Amount, Currency: ch.Currency},
		})
	case n == 0:
		add(DiffEmailMissing, false, "a paid order has no confirmation e-mail, and the charge names no address to send one to")
	case n > 1:
		add(DiffDuplicateEmails, false, fmt.Sprintf("%d confirmation e-mails", n))
	}
	if ch.Customer != "" && !contactExists[ch.Customer] {
		add(DiffCustomerMissing, false, "the charge's customer is not in the CRM", ch.Customer)
	}
	return out
}

func (a *Activities) compareInvoices(ctx context.Context, in ComparePageInput) (ComparePageResult, error) {
	chargeLister, invoiceLister, _, _, err := a.listers()
	if err != nil {
		return ComparePageResult{}, err
	}
	call := providers.Call{CorrelationID: reconcileCorrelation(ctx)}
	invoices, next, err := invoiceLister.ListInvoices(ctx, call, in.page())
	if err != nil {
		return ComparePageResult{}, err
	}
	res := ComparePageResult{Invoices: len(invoices), NextCursor: next}
	var chargeRefs []string
	for _, inv := range invoices {
		if key, ok := orderOf(inv.ExternalRef); ok {
			chargeRefs = append(chargeRefs, key.Step(action.OrderStepCharge).String())
		}
	}
	charges, err := chargeLister.FindChargesByRefs(ctx, call, chargeRefs)
	if err != nil {
		return ComparePageResult{}, err
	}
	res.Charges = len(charges)
	chargeStatus := map[string]string{}
	for _, ch := range charges {
		chargeStatus[ch.ExternalRef] = ch.Status
	}
	for _, inv := range invoices {
		if inv.Status == "void" || !in.InWindow(inv.Created) {
			continue
		}
		key, ok := orderOf(inv.ExternalRef)
		var orderKey string
		if ok { // no key: no charge can be behind it
			orderKey = key.String()
		}
		switch chargeStatus[key.Step(action.OrderStepCharge).String()] {
		case providers.ChargeSucceeded:
			continue
		case providers.ChargeRefunded:
			res.Differences = append(res.Differences, Difference{
				Kind: DiffInvoiceForRefund, OrderKey: orderKey, Refs: []string{inv.ExternalRef, inv.ID},
				Reason: "an open invoice for a refunded charge", Amount: inv.Amount, Currency: inv.Currency,
			})
			continue
		}
		res.Differences = append(res.Differences, Difference{
			Kind: DiffInvoiceWithoutCharge, OrderKey: orderKey, Refs: []string{inv.ExternalRef, inv.ID},
			Reason: "an invoice with no paid charge behind it", Amount: inv.Amount, Currency: inv.Currency,
		})
	}
	return res, nil
}
