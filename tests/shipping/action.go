package shipping

import (
	"context"
	_ "embed"
	"errors"
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/activities"
	"github.com/handoff-hq/handoff/config"
	"github.com/handoff-hq/handoff/contracts"
	"github.com/handoff-hq/handoff/providers"
	"github.com/handoff-hq/handoff/system"
	"github.com/handoff-hq/handoff/worker"
	"github.com/handoff-hq/handoff/workflows"
)

// System is the shipping system; its one provider is the carrier.
var System = system.System{Name: "shipping", Purpose: "ships parcels", Providers: []system.Provider{{Kind: "carrier"}}}

// KindShipment is the action "ship a parcel": "shipment/<id>".
const KindShipment action.Kind = "shipment"

// The steps of a shipment.
const (
	StepLabel  = "label"
	StepPickup = "pickup"
)

// DiffPickupMissing is a labelled parcel nobody collects.
const DiffPickupMissing = "pickup_missing"

// Steps is the shipment's table of steps.
var Steps = workflows.Steps{
	{Name: StepLabel, System: System, Activities: []string{"CreateLabel"}},
	{Name: StepPickup, System: System, Activities: []string{"SchedulePickup"}, Skip: workflows.SkipAnytime, Repairs: DiffPickupMissing},
}

// contractFile is the carrier's contract.
//
//go:embed contract.yaml
var contractFile []byte

// The registration: the system, the kind of action, the provider and its
// contract.
func init() {
	contract, err := contracts.Parse("tests/shipping/contract.yaml", contractFile)
	for _, err := range []error{
		err,
		system.Register(System),
		contracts.Register(contract),
		action.RegisterKind(action.KindSpec{Kind: KindShipment, WorkflowType: "ShipmentWorkflow"}),
		worker.RegisterAdapter("carrier", func(name string, p config.Provider) (any, error) {
			return NewClient(p.URL, worker.HTTPOptions(name, p)), nil
		}),
	} {
		if err != nil {
			panic(err)
		}
	}
}

// ShipmentInput is a parcel to ship.
type ShipmentInput struct {
	ShipmentID    string
	Address       string
	CorrelationID string
}

// a names the activities in the workflow.
var a *Activities

// ShipmentWorkflow ships a parcel: a label, then a pickup. It is built on
// workflows.Run: its steps park for an operator, who retries, skips or
// aborts them through the same API as an order's.
func ShipmentWorkflow(ctx workflow.Context, in ShipmentInput) (workflows.OrderResult, error) {
	run := workflows.NewRun(ctx, workflows.RunOptions{ID: in.ShipmentID, CorrelationID: in.CorrelationID, Steps: Steps})
	if err := run.RegisterUpdates(ctx); err != nil {
		return workflows.OrderResult{}, err
	}
	var label LabelResult
	err := workflows.RunStep(ctx, run, StepLabel, a.CreateLabel, func() LabelInput {
		return LabelInput{Call: run.Call(StepLabel), Address: in.Address}
	}, &label)
	if err == nil {
		var pickup PickupResult
		err = workflows.RunStep(ctx, run, StepPickup, a.SchedulePickup, func() PickupInput {
			return PickupInput{Call: run.Call(StepPickup), LabelID: label.LabelID}
		}, &pickup)
	}
	switch {
	case errors.Is(err, workflows.ErrCancelled):
		err = run.SetStatus(ctx, action.StatusCancelled) // nothing to undo: a label costs nothing
	case err == nil:
		err = run.SetStatus(ctx, action.StatusCompleted)
	}
	return workflows.OrderResult{State: run.State()}, err
}

// Activities are the shipment's activities, on the shipping queue.
type Activities struct {
	Carrier *Client
}

// LabelInput asks for a label.
type LabelInput struct {
	Call    providers.Call
	Address string
}

// LabelResult names the label.
type LabelResult struct {
	activities.Outcome
	LabelID string
}

// CreateLabel makes the label, or adopts the one an earlier attempt made.
func (a *Activities) CreateLabel(ctx context.Context, in LabelInput) (LabelResult, error) {
	l, err := activities.AdoptOrCreate(ctx, in.Call, "label", a.Carrier.FindLabel, func() (Label, error) {
		return a.Carrier.CreateLabel(ctx, in.Call, in.Address)
	})
	if err != nil {
		return LabelResult{}, err
	}
	return LabelResult{Outcome: activities.NewOutcome(ctx, l.ID), LabelID: l.ID}, nil
}

// PickupInput asks for the pickup of a labelled parcel.
type PickupInput struct {
	Call    providers.Call
	LabelID string
}

// PickupResult names the pickup.
type PickupResult struct {
	activities.Outcome
	PickupID string
}

// SchedulePickup schedules the pickup, or adopts the one that exists.
func (a *Activities) SchedulePickup(ctx context.Context, in PickupInput) (PickupResult, error) {
	p, err := activities.AdoptOrCreate(ctx, in.Call, "pickup", a.Carrier.FindPickup, func() (Pickup, error) {
		return a.Carrier.SchedulePickup(ctx, in.Call, in.LabelID)
	})
	if err != nil {
		return PickupResult{}, err
	}
	return PickupResult{Outcome: activities.NewOutcome(ctx, p.ID), PickupID: p.ID}, nil
}

// ComparePage is the reconciliation phase "parcels": every label must
// have its pickup. A missing pickup is safe to repair, with the shipment's
// own activity and key.
func (a *Activities) ComparePage(ctx context.Context, in activities.ComparePageInput) (activities.ComparePageResult, error) {
	call := providers.Call{CorrelationID: "reconcile"}
	labels, next, err := a.Carrier.ListLabels(ctx, call, in.Cursor, in.Limit)
	if err != nil {
		return activities.ComparePageResult{}, err
	}
	var refs []string
	var keys []action.Key
	var kept []Label
	for _, l := range labels {
		k, err := action.ParseStepKey(l.ExternalRef)
		if err != nil || k.Action.Kind != KindShipment || !in.InWindow(l.Created) {
			continue
		}
		keys, kept = append(keys, k.Action), append(kept, l)
		refs = append(refs, k.Action.Step(StepPickup).String())
	}
	pickups, err := a.Carrier.FindPickups(ctx, call, refs)
	if err != nil {
		return activities.ComparePageResult{}, err
	}
	have := map[string]bool{}
	for _, p := range pickups {
		have[p.ExternalRef] = true
	}
	res := activities.ComparePageResult{Records: map[string]int{"labels": len(labels), "pickups": len(pickups)}, NextCursor: next}
	for i, k := range keys {
		if have[refs[i]] {
			continue
		}
		repair, err := activities.NewRepair(StepPickup, System.Name, "SchedulePickup",
			PickupInput{Call: providers.Call{IdempotencyKey: refs[i], CorrelationID: "reconcile"}, LabelID: kept[i].ID})
		if err != nil {
			return activities.ComparePageResult{}, fmt.Errorf("compare parcels: %w", err)
		}
		res.Differences = append(res.Differences, activities.Difference{
			Kind: DiffPickupMissing, Safe: true, OrderKey: k.String(), Refs: []string{kept[i].ExternalRef, kept[i].ID},
			Reason: "a labelled parcel has no pickup", Repair: repair,
		})
	}
	return res, nil
}
