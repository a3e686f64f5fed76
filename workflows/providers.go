package workflows

import (
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/handoff-hq/handoff/config"
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

// ProviderControlState is which providers are paused.
type ProviderControlState struct {
	Paused map[string]ProviderPause
}

// ProviderPause records one pause.
type ProviderPause struct {
	Since  time.Time
	Reason string
}

// ProviderRequest is the argument of the pause and resume updates.
type ProviderRequest struct {
	System string
	Reason string
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
	validate := func(_ workflow.Context, req ProviderRequest) error {
		if !slices.Contains(config.Systems, req.System) {
			return notApplicable("unknown system %q: want one of %s", req.System, strings.Join(config.Systems, ", "))
		}
		return nil
	}
	err := workflow.SetUpdateHandlerWithOptions(ctx, UpdatePauseProvider,
		func(ctx workflow.Context, req ProviderRequest) (ProviderControlState, error) {
			if _, paused := state.Paused[req.System]; !paused {
				state.Paused[req.System] = ProviderPause{Since: workflow.Now(ctx), Reason: req.Reason}
				changes++
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
