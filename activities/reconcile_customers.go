package activities

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/providers"
)

// PhaseCustomers compares every CRM contact that holds a customer with the
// customer's record in accounting, field by field; PhaseAccountingCustomers
// finds accounting's customers the CRM does not hold.
const (
	PhaseCustomers           = "customers"
	PhaseAccountingCustomers = "accounting-customers"
)

// Kinds of difference between the systems' customer records.
const (
	// DiffCustomerField is a field both systems keep at different values:
	// the owner's value is written into the other system.
	DiffCustomerField = "customer_field_mismatch"
	// DiffCustomerUnmatched is a customer one system holds and the other
	// does not.
	DiffCustomerUnmatched = "customer_unmatched"
	// DiffCustomerAmbiguous is a customer two records of one system hold.
	DiffCustomerAmbiguous = "customer_ambiguous"
)

// CustomerPhases are the reconciliation phases of customers, when both
// the CRM and accounting keep customer records: owners says, by field,
// which system owns it (the contracts' ownership).
func CustomerPhases(a *Activities, owners map[string]string) []Phase {
	crm, ok1 := a.Customers["crm"]
	acc, ok2 := a.Customers["accounting"]
	if !ok1 || !ok2 {
		return nil
	}
	return []Phase{
		{Name: PhaseCustomers, Compare: func(ctx context.Context, in ComparePageInput) (ComparePageResult, error) {
			return compareCustomers(ctx, in, "crm", crm, "accounting", acc, owners, true)
		}},
		{Name: PhaseAccountingCustomers, Compare: func(ctx context.Context, in ComparePageInput) (ComparePageResult, error) {
			return compareCustomers(ctx, in, "accounting", acc, "crm", crm, owners, false)
		}},
	}
}

// compareCustomers lists one page of one system's customer records and
// looks up each customer's record in the other system. Records that hold
// no customer's reference belong to no customer and are not compared.
// With fields, the fields both keep are compared too (once: the phase
// listing the CRM does it).
func compareCustomers(ctx context.Context, in ComparePageInput, listed string, list providers.Customers, other string, find providers.Customers,
	owners map[string]string, fields bool) (ComparePageResult, error) {
	call := providers.Call{CorrelationID: reconcileCorrelation(ctx)}
	records, next, err := list.ListCustomers(ctx, call, in.page())
	if err != nil {
		return ComparePageResult{}, fmt.Errorf("list %s customers: %w", listed, err)
	}
	res := ComparePageResult{NextCursor: next, Records: map[string]int{listed + " customers": 0}}
	for _, r := range records {
		key, err := action.ParseKey(r.ExternalRef)
		if err != nil || key.Kind != action.KindCustomer {
			continue
		}
		res.Records[listed+" customers"]++
		found, err := find.FindCustomers(ctx, call, providers.CustomerQuery{ExternalRef: r.ExternalRef})
		if err != nil {
			return ComparePageResult{}, fmt.Errorf("find %s's %s customer: %w", key, other, err)
		}
		ref := key.String()
		switch {
		case len(found) == 0:
			res.Differences = append(res.Differences, Difference{Kind: DiffCustomerUnmatched, Refs: []string{ref, r.ID},
				Reason: fmt.Sprintf("%s holds customer %s (%s); %s holds none", listed, key.ID, r.ID, other)})
			continue
		case len(found) > 1:
			ids := []string{}
			for _, f := range found {
				ids = append(ids, f.ID)
			}
			res.Differences = append(res.Differences, Difference{Kind: DiffCustomerAmbiguous, Refs: append([]string{ref}, ids...),
				Reason: fmt.Sprintf("%d %s records hold customer %s: %v", len(found), other, key.ID, ids)})
			continue
		}
		if fields {
			d, err := fieldDifferences(key, listed, r, other, found[0], owners)
			if err != nil {
				return ComparePageResult{}, err
			}
			res.Differences = append(res.Differences, d...)
		}
	}
	return res, nil
}

// fieldDifferences compares the fields both records keep. Where they
// differ, the owner's record is the truth the customer's workflow missed
// (its event was lost): the repair hands it to the workflow, which applies
// it by its rules and writes the other system itself.
func fieldDifferences(key action.Key, aName string, a providers.CustomerRecord, bName string, b providers.CustomerRecord, owners map[string]string) ([]Difference, error) {
	recs := map[string]providers.CustomerRecord{aName: a, bName: b}
	differing := map[string][]string{}
	var diffs []Difference
	for _, f := range action.CustomerFields {
		av, inA := a.Fields[f]
		bv, inB := b.Fields[f]
		if !inA || !inB || av == bv {
			continue
		}
		owner := owners[f]
		if owner != aName && owner != bName {
			diffs = append(diffs, Difference{Kind: DiffCustomerField, Refs: []string{key.String(), a.ID, b.ID},
				Reason: fmt.Sprintf("%s differs between %s and %s, and neither owns it", f, aName, bName)})
			continue
		}
		differing[owner] = append(differing[owner], f)
	}
	for _, owner := range slices.Sorted(maps.Keys(differing)) {
		rec := recs[owner]
		in := DeliverCustomerRecordInput{CustomerID: key.ID, Change: action.CustomerChange{
			Source: owner, RecordID: rec.ID, ExternalRef: rec.ExternalRef, Version: rec.Version, Fields: rec.Fields, Type: "reconciliation",
		}}
		repair, err := NewRepair("match_"+owner, owner, "DeliverCustomerRecord", in)
		if err != nil {
			return nil, err
		}
		diffs = append(diffs, Difference{Kind: DiffCustomerField, Safe: true, Refs: []string{key.String(), a.ID, b.ID}, Repair: repair,
			Reason: fmt.Sprintf("%v differ between %s and %s; %s owns them: its record is handed to the customer", differing[owner], aName, bName, owner)})
	}
	return diffs, nil
}

// CustomerNews hands a system's record to its customer's workflow.
type CustomerNews interface {
	DeliverCustomerRecord(ctx context.Context, customerID string, ch action.CustomerChange) error
}

// DeliverCustomerRecordInput is a system's record of a customer, as it
// stands.
type DeliverCustomerRecordInput struct {
	CustomerID string
	Change     action.CustomerChange
}

// DeliverCustomerRecordResult is empty besides the outcome.
type DeliverCustomerRecordResult struct {
	Outcome
}

// DeliverCustomerRecord hands a record reconciliation read to the
// customer's workflow, as the record's lost event would have.
func (a *Activities) DeliverCustomerRecord(ctx context.Context, in DeliverCustomerRecordInput) (DeliverCustomerRecordResult, error) {
	if a.News == nil {
		return DeliverCustomerRecordResult{}, Fail(ctx, "deliver customer record", &providers.Error{System: in.Change.Source, Operation: "deliver_customer_record",
			Category: action.CategoryPermanent, Type: action.TypeUnsupported, Err: fmt.Errorf("no way to reach the customers' workflows")})
	}
	if err := a.News.DeliverCustomerRecord(ctx, in.CustomerID, in.Change); err != nil {
		return DeliverCustomerRecordResult{}, Fail(ctx, "deliver customer record", err)
	}
	return DeliverCustomerRecordResult{Outcome: NewOutcome(ctx, in.Change.RecordID)}, nil
}
