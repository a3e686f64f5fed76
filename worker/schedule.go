package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/handoff-hq/handoff/workflows"
)

// ReconcileScheduleOptions configures the reconciliation schedule.
type ReconcileScheduleOptions struct {
	Every time.Duration
	Input workflows.ReconcileInput
}

// EnsureReconcileSchedule creates the reconciliation schedule, or brings an
// existing one to the configured interval: however many times workers
// start, there is one schedule. Runs that would overlap are skipped, and
// runs missed while the cluster was down are caught up within an interval.
func EnsureReconcileSchedule(ctx context.Context, c client.Client, opts ReconcileScheduleOptions) error {
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: opts.Every}}}
	action := &client.ScheduleWorkflowAction{
		ID: "reconcile-scheduled", Workflow: workflows.ReconcileWorkflow, TaskQueue: workflows.TaskQueue,
		Args: []any{opts.Input},
	}
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID: workflows.ReconcileScheduleID, Spec: spec, Action: action,
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, CatchupWindow: opts.Every,
	})
	if err == nil {
		return nil
	}
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return fmt.Errorf("create reconciliation schedule: %w", err)
	}
	err = c.ScheduleClient().GetHandle(ctx, workflows.ReconcileScheduleID).Update(ctx, client.ScheduleUpdateOptions{
		DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			s := in.Description.Schedule
			s.Spec = &spec
			s.Action = action
			if s.Policy != nil {
				s.Policy.Overlap, s.Policy.CatchupWindow = enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, opts.Every
			}
			return &client.ScheduleUpdate{Schedule: &s}, nil
		},
	})
	if err != nil {
		return fmt.Errorf("update reconciliation schedule: %w", err)
	}
	return nil
}
