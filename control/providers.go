package control

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/system"
	"github.com/handoff-hq/handoff/workflows"
)

// ProviderStatus is a provider's pause state and the calls waiting for it.
type ProviderStatus struct {
	System      string     `json:"system"`
	Paused      bool       `json:"paused"`
	PausedSince *time.Time `json:"paused_since,omitempty"`
	Reason      string     `json:"reason,omitempty"`
	// Backlog is Temporal's approximate count of calls waiting in the
	// provider's task queue; BacklogAgeSeconds is how long the oldest waits.
	Backlog           int64   `json:"backlog"`
	BacklogAgeSeconds float64 `json:"backlog_age_seconds"`
}

// PauseProvider stops every call to a provider until it is resumed; calls
// wait in its task queue without using attempts. It returns only once the
// pause is in effect: after the pause lease, no worker lets a call to the
// provider through (see workflows.PauseLease).
func (s *Client) PauseProvider(ctx context.Context, system, reason string) (ProviderStatus, error) {
	st, err := s.controlProvider(ctx, workflows.UpdatePauseProvider, system, reason)
	if err != nil {
		return st, err
	}
	select {
	case <-time.After(workflows.PauseLease + pauseMargin):
	case <-ctx.Done():
		return st, fmt.Errorf("pause %s: %w", system, ctx.Err())
	}
	return st, nil
}

// pauseMargin covers the clocks of the API and worker processes drifting
// apart by up to this much.
const pauseMargin = 250 * time.Millisecond

// ResumeProvider lets a paused provider's calls go again; they drain at the
// provider's rate limit.
func (s *Client) ResumeProvider(ctx context.Context, system, reason string) (ProviderStatus, error) {
	return s.controlProvider(ctx, workflows.UpdateResumeProvider, system, reason)
}

func (s *Client) controlProvider(ctx context.Context, update, system, reason string) (ProviderStatus, error) {
	start := s.client.NewWithStartWorkflowOperation(workflows.ProviderControlStart(), workflows.ProviderControlWorkflow, workflows.ProviderControlState{})
	handle, err := s.client.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateName: update, Args: []any{workflows.ProviderRequest{System: system, Reason: reason}},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	var state workflows.ProviderControlState
	if err == nil {
		err = handle.Get(ctx, &state)
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == action.TypeNotApplicable {
		return ProviderStatus{}, &ValidationError{Fields: []action.FieldError{{Field: "system", Detail: appErr.Message()}}}
	}
	if err != nil {
		return ProviderStatus{}, fmt.Errorf("%s %s: %w", update, system, err)
	}
	return s.status(ctx, system, state)
}

// Provider reports a provider's pause state and backlog.
func (s *Client) Provider(ctx context.Context, system string) (ProviderStatus, error) {
	paused, err := s.paused(ctx)
	if err != nil {
		return ProviderStatus{}, fmt.Errorf("read provider %s: %w", system, err)
	}
	return s.status(ctx, system, workflows.ProviderControlState{Paused: paused})
}

// paused is ReadPaused for the API's reads: before the control workflow
// exists (no worker has started, nobody paused anything), no provider is
// paused. The workers themselves keep to ReadPaused, which lets no call
// through until the control workflow answers.
func (s *Client) paused(ctx context.Context) (map[string]workflows.ProviderPause, error) {
	paused, err := ReadPaused(ctx, s.client, s.dc)
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return map[string]workflows.ProviderPause{}, nil
	}
	return paused, err
}

func (s *Client) status(ctx context.Context, name string, state workflows.ProviderControlState) (ProviderStatus, error) {
	st := ProviderStatus{System: name}
	sys, ok := system.Lookup(name)
	if !ok {
		return st, &ValidationError{Fields: []action.FieldError{{Field: "system", Detail: "must be one of " + strings.Join(system.Names(), ", ")}}}
	}
	if p, ok := state.Paused[name]; ok {
		since := p.Since
		st.Paused, st.PausedSince, st.Reason = true, &since, p.Reason
	}
	resp, err := s.client.WorkflowService().DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
		Namespace:     s.namespace,
		TaskQueue:     &taskqueuepb.TaskQueue{Name: sys.TaskQueue(), Kind: enumspb.TASK_QUEUE_KIND_NORMAL},
		TaskQueueType: enumspb.TASK_QUEUE_TYPE_ACTIVITY,
		ReportStats:   true,
	})
	if err != nil {
		return st, fmt.Errorf("read %s backlog: %w", name, err)
	}
	st.Backlog = resp.GetStats().GetApproximateBacklogCount()
	st.BacklogAgeSeconds = resp.GetStats().GetApproximateBacklogAge().AsDuration().Seconds()
	return st, nil
}

// ReadPaused returns the paused providers. It reads the provider control
// workflow's memo, which Temporal keeps consistent with the workflow's
// state and serves without a worker; control workflows from before the
// memo are asked by query.
func ReadPaused(ctx context.Context, c client.Client, dc converter.DataConverter) (map[string]workflows.ProviderPause, error) {
	desc, err := c.DescribeWorkflow(ctx, workflows.ProviderControlID, "")
	if err != nil {
		return nil, fmt.Errorf("read provider pauses: %w", err)
	}
	if p, ok := desc.RawResponse.GetWorkflowExecutionInfo().GetMemo().GetFields()[workflows.MemoPaused]; ok {
		paused := map[string]workflows.ProviderPause{}
		if err := dc.FromPayload(p, &paused); err != nil {
			return nil, fmt.Errorf("read provider pauses: %w", err)
		}
		return paused, nil
	}
	v, err := c.QueryWorkflow(ctx, workflows.ProviderControlID, "", workflows.QueryProviders)
	if err != nil {
		return nil, fmt.Errorf("read provider pauses: %w", err)
	}
	var state workflows.ProviderControlState
	if err := v.Get(&state); err != nil {
		return nil, fmt.Errorf("read provider pauses: %w", err)
	}
	return state.Paused, nil
}
