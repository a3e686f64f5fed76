package workflows

import (
	"fmt"
	"strings"
	"time"

	"github.com/handoff-hq/handoff/system"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/workflow"
)

// ProviderControlID is the workflow ID of the one provider control workflow
// per namespace: it holds which providers operators paused, durably, so
// that a pause outlives restarts of workers and the API.
const ProviderControlID = "handoff/providers"

// Provider control updates and query.
const (
	UpdatePauseProvider  = "pause_provider"
	UpdateResumeProvider = "resume_provider"
	QueryProviders       = "providers"
)

// controlUpdatesPerRun bounds the control workflow's history; it continues
// as new after this many changes.
const controlUpdatesPerRun = 200

// MemoPaused is the control workflow's memo field holding the paused
// providers (a map of system to ProviderPause). Temporal serves the memo
// without a worker and consistently with the updates that changed it.
const MemoPaused = "paused"

// PauseLease is how long a worker may trust the pause state it read before
// it must read it again to let a provider call through; an operator's pause
// is answered only after it has passed, so that from the answer on no worker
// calls the paused provider.
const PauseLease = time.Second

// versionPauseMemo marks the change that keeps the pause state in the memo.
const versionPauseMemo = "pause-memo"

// ProviderControlState is which providers are paused.
type ProviderControlState struct {
	Paused map[string]ProviderPause `json:"paused"`
}

// ProviderPause records one pause.
type ProviderPause struct {
	Since  time.Time `json:"since"`
	Reason string    `json:"reason"`
}

// ProviderRequest is the argument of the pause and resume updates.
type ProviderRequest struct {
	System string `json:"system"`
	Reason string `json:"reason"`
}

// ProviderControlStart starts the provider control workflow, or finds the
// one that runs; a new one starts with no provider paused, in its memo too,
// so that the pause state is readable from its first moment.
func ProviderControlStart() client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID: ProviderControlID, TaskQueue: TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		Memo:                     map[string]any{MemoPaused: map[string]ProviderPause{}},
	}
}

// ProviderControlWorkflow keeps the pause state of the providers. Workers
// query it and stop polling a paused provider's task queue, so its calls
// wait in the queue without using attempts.
func ProviderControlWorkflow(ctx workflow.Context, state ProviderControlState) error {
	if state.Paused == nil {
		state.Paused = map[string]ProviderPause{}
	}
	if err := workflow.SetQueryHandler(ctx, QueryProviders, func() (ProviderControlState, error) { return state, nil }); err != nil {
		return err
	}
	changes := 0
	memo := workflow.GetVersion(ctx, versionPauseMemo, workflow.DefaultVersion, 1) == 1
	publish := func(ctx workflow.Context) error {
		if !memo {
			return nil
		}
		if err := workflow.UpsertMemo(ctx, map[string]any{MemoPaused: state.Paused}); err != nil {
			return fmt.Errorf("record provider pauses: %w", err)
		}
		return nil
	}
	if err := publish(ctx); err != nil {
		return err
	}
	validate := func(_ workflow.Context, req ProviderRequest) error {
		if _, ok := system.Lookup(req.System); !ok {
			return notApplicable("unknown system %q: want one of %s", req.System, strings.Join(system.Names(), ", "))
		}
		return nil
	}
	err := workflow.SetUpdateHandlerWithOptions(ctx, UpdatePauseProvider,
		func(ctx workflow.Context, req ProviderRequest) (ProviderControlState, error) {
			if _, paused := state.Paused[req.System]; !paused {
				state.Paused[req.System] = ProviderPause{Since: workflow.Now(ctx), Reason: req.Reason}
				changes++
				if err := publish(ctx); err != nil {
					return state, err
				}
			}
			return state, nil
		}, workflow.UpdateHandlerOptions{Validator: validate})
	if err != nil {
		return err
	}
	err = workflow.SetUpdateHandlerWithOptions(ctx, UpdateResumeProvider,
		func(ctx workflow.Context, req ProviderRequest) (ProviderControlState, error) {
			if _, paused := state.Paused[req.System]; paused {
				delete(state.Paused, req.System)
				changes++
				if err := publish(ctx); err != nil {
					return state, err
				}
			}
			return state, nil
		}, workflow.UpdateHandlerOptions{Validator: validate})
	if err != nil {
		return err
	}
	err = workflow.Await(ctx, func() bool {
		return changes >= controlUpdatesPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
	})
	if err != nil {
		return err
	}
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return err
	}
	return workflow.NewContinueAsNewError(ctx, ProviderControlWorkflow, state)
}
