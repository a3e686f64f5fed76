package workflows

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/workflow"
)

// ContractDriftID is the workflow ID of the one contract drift workflow per
// namespace: it keeps, durably, every way providers' answers differed from
// their contracts, as workers report it.
const ContractDriftID = "handoff/contract-drift"

// Contract drift signal and update.
const (
	// SignalContractDrift carries a batch of sightings ([]DriftSighting).
	SignalContractDrift = "contract_drift"
	// UpdateClearDrift forgets the sightings of one system (or of all,
	// for an empty system), once its contract has been reviewed.
	UpdateClearDrift = "clear_drift"
)

// MemoDrift is the drift workflow's memo field holding every sighting
// ([]DriftSighting), readable without a worker.
const MemoDrift = "drift"

// driftBatchesPerRun bounds the drift workflow's history; it continues as
// new after this many batches.
const driftBatchesPerRun = 500

// maxDriftSightings bounds what the workflow keeps; a sighting beyond it
// is still counted by the workers' metric.
const maxDriftSightings = 500

// DriftSighting is one way a provider's answers to one operation differed
// from its contract: how often, first and last seen, with one example that
// shows no personal data.
type DriftSighting struct {
	System    string    `json:"system"`
	Operation string    `json:"operation"`
	Kind      string    `json:"kind"`
	Field     string    `json:"field"`
	Example   string    `json:"example"`
	Count     int64     `json:"count"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// Key names what the sighting is of.
func (d DriftSighting) Key() string {
	return d.System + " " + d.Operation + " " + d.Kind + " " + d.Field
}

// ContractDriftState is every sighting, ordered by system, operation, kind
// and field.
type ContractDriftState struct {
	Drift []DriftSighting `json:"drift"`
}

// ClearDriftRequest is the argument of the clear update.
type ClearDriftRequest struct {
	System string `json:"system"`
	Reason string `json:"reason"`
}

// ContractDriftStart starts the drift workflow, or finds the one that runs.
func ContractDriftStart() client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID: ContractDriftID, TaskQueue: TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}
}

// ContractDriftWorkflow merges the workers' sightings of contract drift
// and keeps them in its memo.
func ContractDriftWorkflow(ctx workflow.Context, state ContractDriftState) error {
	publish := func() error {
		if err := workflow.UpsertMemo(ctx, map[string]any{MemoDrift: state.Drift}); err != nil {
			return fmt.Errorf("record contract drift: %w", err)
		}
		return nil
	}
	err := workflow.SetUpdateHandler(ctx, UpdateClearDrift, func(ctx workflow.Context, req ClearDriftRequest) (ContractDriftState, error) {
		n := len(state.Drift)
		state.Drift = slices.DeleteFunc(state.Drift, func(d DriftSighting) bool { return req.System == "" || d.System == req.System })
		if len(state.Drift) != n {
			if err := publish(); err != nil {
				return state, err
			}
		}
		return state, nil
	})
	if err != nil {
		return err
	}
	signals := workflow.GetSignalChannel(ctx, SignalContractDrift)
	for batches := 0; batches < driftBatchesPerRun && !workflow.GetInfo(ctx).GetContinueAsNewSuggested(); batches++ {
		var batch []DriftSighting
		signals.Receive(ctx, &batch)
		state.Drift = MergeDrift(state.Drift, batch)
		if err := publish(); err != nil {
			return err
		}
	}
	// What arrived while the last batch was recorded goes to the next run.
	for {
		var batch []DriftSighting
		if !signals.ReceiveAsync(&batch) {
			break
		}
		state.Drift = MergeDrift(state.Drift, batch)
	}
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return err
	}
	return workflow.NewContinueAsNewError(ctx, ContractDriftWorkflow, state)
}

// MergeDrift adds a batch of sightings to those kept: counts add up, the
// first sighting's example stays, and the result is ordered and bounded.
func MergeDrift(kept, batch []DriftSighting) []DriftSighting {
	at := make(map[string]int, len(kept))
	for i, d := range kept {
		at[d.Key()] = i
	}
	for _, d := range batch {
		i, ok := at[d.Key()]
		if !ok {
			if len(kept) >= maxDriftSightings {
				continue
			}
			at[d.Key()] = len(kept)
			kept = append(kept, d)
			continue
		}
		k := &kept[i]
		k.Count += d.Count
		if d.FirstSeen.Before(k.FirstSeen) {
			k.FirstSeen = d.FirstSeen
		}
		if d.LastSeen.After(k.LastSeen) {
			k.LastSeen = d.LastSeen
		}
	}
	slices.SortFunc(kept, func(a, b DriftSighting) int {
		return cmp.Or(cmp.Compare(a.System, b.System), cmp.Compare(a.Operation, b.Operation), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Field, b.Field))
	})
	return kept
}
