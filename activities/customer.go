package activities

import (
	"context"
	"errors"
	"fmt"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/providers"
)

// MatchCustomerInput finds the record that holds a customer in one system.
type MatchCustomerInput struct {
	Call   providers.Call
	System string
	// ExternalRef is the customer's reference, "customer/<id>".
	ExternalRef string
	// Email, when not empty, matches a record that holds no reference.
	Email string
	// Pick is the record an operator chose among several candidates.
	Pick string
	// Create makes the record, with Fields, when nothing matches.
	Create bool
	Fields map[string]string
}

// How a customer's record was matched.
const (
	MatchedByReference = "external_ref"
	MatchedByEmail     = "email"
	MatchedByOperator  = "operator"
	MatchedByCreating  = "created"
)

// MatchCustomerResult is the matched record, or the candidates when there
// are several, or neither when nothing matched and nothing was made.
type MatchCustomerResult struct {
	Outcome
	Record     *providers.CustomerRecord
	MatchedBy  string
	Candidates []string
}

// customers returns the system's customer records.
func (a *Activities) customers(ctx context.Context, sys string) (providers.Customers, error) {
	c, ok := a.Customers[sys]
	if !ok {
		return nil, Fail(ctx, "customer records", &providers.Error{System: sys, Operation: "customers", Category: action.CategoryPermanent,
			Type: action.TypeUnsupported, Err: fmt.Errorf("the configured %s provider keeps no customer records", sys)})
	}
	return c, nil
}

// MatchCustomer finds the customer's record in a system: the one holding
// its reference, else the one record with its e-mail address that holds
// no other customer's reference. Several such records are returned as
// candidates, for an operator to choose; none is made when allowed.
func (a *Activities) MatchCustomer(ctx context.Context, in MatchCustomerInput) (MatchCustomerResult, error) {
	c, err := a.customers(ctx, in.System)
	if err != nil {
		return MatchCustomerResult{}, err
	}
	found := func(r providers.CustomerRecord, by string) (MatchCustomerResult, error) {
		return MatchCustomerResult{Outcome: NewOutcome(ctx, r.ID), Record: &r, MatchedBy: by}, nil
	}
	if in.Pick != "" {
		r, err := c.GetCustomer(ctx, in.Call, in.Pick)
		if err != nil {
			return MatchCustomerResult{}, Fail(ctx, "read the chosen record", err)
		}
		return found(r, MatchedByOperator)
	}
	byRef, err := c.FindCustomers(ctx, in.Call, providers.CustomerQuery{ExternalRef: in.ExternalRef})
	if err != nil {
		return MatchCustomerResult{}, Fail(ctx, "find customer by reference", err)
	}
	if len(byRef) > 0 {
		return found(byRef[0], MatchedByReference) // the oldest: a later one is a copy
	}
	if in.Email != "" {
		byEmail, err := c.FindCustomers(ctx, in.Call, providers.CustomerQuery{Email: action.NormalizeEmail(in.Email)})
		if err != nil {
			return MatchCustomerResult{}, Fail(ctx, "find customer by e-mail", err)
		}
		var free []providers.CustomerRecord
		for _, r := range byEmail {
			if r.ExternalRef == "" || r.ExternalRef == in.ExternalRef {
				free = append(free, r)
			}
		}
		switch {
		case len(free) == 1:
			return found(free[0], MatchedByEmail)
		case len(free) > 1:
			out := MatchCustomerResult{Outcome: NewOutcome(ctx, "")}
			for _, r := range free {
				out.Candidates = append(out.Candidates, r.ID)
			}
			return out, nil
		}
	}
	if !in.Create || in.Email == "" {
		return MatchCustomerResult{Outcome: NewOutcome(ctx, "")}, nil
	}
	r, err := c.CreateCustomer(ctx, in.Call, providers.CustomerWrite{Fields: in.Fields, ExternalRef: in.ExternalRef})
	if err != nil {
		return MatchCustomerResult{}, Fail(ctx, "create customer", err)
	}
	return found(r, MatchedByCreating)
}

// WriteCustomerInput sets fields of a customer's record, only over the
// version the write was planned on.
type WriteCustomerInput struct {
	Call        providers.Call
	System      string
	RecordID    string
	Fields      map[string]string
	ExternalRef string
	IfVersion   int64
}

// WriteCustomerResult is the record after the write; Stale when it had
// changed since it was read, and then as it now stands, unwritten.
type WriteCustomerResult struct {
	Outcome
	Record providers.CustomerRecord
	Stale  bool
}

// WriteCustomer writes a customer's fields into one system. A record that
// changed since it was read is not written: it is read again and returned
// as Stale, so that the change someone made is seen before deciding.
func (a *Activities) WriteCustomer(ctx context.Context, in WriteCustomerInput) (WriteCustomerResult, error) {
	c, err := a.customers(ctx, in.System)
	if err != nil {
		return WriteCustomerResult{}, err
	}
	r, err := c.UpdateCustomer(ctx, in.Call, in.RecordID, providers.CustomerWrite{Fields: in.Fields, ExternalRef: in.ExternalRef, IfVersion: in.IfVersion})
	var pe *providers.Error
	if errors.As(err, &pe) && pe.Type == action.TypeStaleRecord {
		now, err := c.GetCustomer(ctx, in.Call, in.RecordID)
		if err != nil {
			return WriteCustomerResult{}, Fail(ctx, "read the changed record", err)
		}
		return WriteCustomerResult{Outcome: NewOutcome(ctx, now.ID), Record: now, Stale: true}, nil
	}
	if err != nil {
		return WriteCustomerResult{}, Fail(ctx, "write customer", err)
	}
	return WriteCustomerResult{Outcome: NewOutcome(ctx, r.ID), Record: r}, nil
}
