package control

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/google/uuid"

	"github.com/handoff-hq/handoff/workflows"
)

// ErrRunning means a reconciliation has not finished yet.
var ErrRunning = errors.New("the reconciliation is still running")

// RunningError is the error of a reconciliation that has not finished yet:
// it matches ErrRunning and says where the reconciliation stands.
type RunningError struct {
	ID string
	// Progress is nil until the first page is compared (and for
	// reconciliations started by a release that did not keep it).
	Progress *workflows.ReconcileStanding
}

func (e *RunningError) Error() string { return "reconciliation " + e.ID + ": " + ErrRunning.Error() }

// Is makes errors.Is(err, ErrRunning) true.
func (e *RunningError) Is(target error) bool { return target == ErrRunning }

// StartReconciliation starts a reconciliation now and returns its id.
func (s *Client) StartReconciliation(ctx context.Context) (string, error) {
	in := s.opts.Reconcile
	id := "reconcile-" + time.Now().UTC().Format("20060102T150405Z") + "-" + uuid.NewString()[:8]
	_, err := s.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueue}, workflows.ReconcileWorkflow, in)
	if err != nil {
		return "", fmt.Errorf("start reconciliation: %w", err)
	}
	return id, nil
}

// Reconciliation returns a finished reconciliation's report, or a
// *RunningError with its progress; neither needs a worker.
func (s *Client) Reconciliation(ctx context.Context, id string) (workflows.ReconcileReport, error) {
	info, err := s.describe(ctx, id)
	if err != nil {
		return workflows.ReconcileReport{}, fmt.Errorf("read reconciliation %s: %w", id, err)
	}
	if info.GetType().GetName() != "ReconcileWorkflow" {
		return workflows.ReconcileReport{}, fmt.Errorf("read reconciliation %s: %w", id, ErrNotFound)
	}
	if info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		running := &RunningError{ID: id}
		if p, ok := info.GetMemo().GetFields()[workflows.MemoProgress]; ok {
			var standing workflows.ReconcileStanding
			if s.dc.FromPayload(p, &standing) == nil {
				running.Progress = &standing
			}
		}
		return workflows.ReconcileReport{ID: id}, running
	}
	var report workflows.ReconcileReport
	if err := s.client.GetWorkflow(ctx, id, "").Get(ctx, &report); err != nil {
		return workflows.ReconcileReport{}, fmt.Errorf("read reconciliation %s: %w", id, err)
	}
	return report, nil
}

// LatestReconciliation returns the report of the reconciliation that
// finished last.
func (s *Client) LatestReconciliation(ctx context.Context) (workflows.ReconcileReport, error) {
	resp, err := s.client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Query:    `WorkflowType = "ReconcileWorkflow" AND ExecutionStatus = "Completed"`,
		PageSize: 20,
	})
	if err != nil {
		return workflows.ReconcileReport{}, fmt.Errorf("find the latest reconciliation: %w", err)
	}
	var latest string
	var closed time.Time
	for _, e := range resp.GetExecutions() {
		if t := e.GetCloseTime().AsTime(); latest == "" || t.After(closed) {
			latest, closed = e.GetExecution().GetWorkflowId(), t
		}
	}
	if latest == "" {
		return workflows.ReconcileReport{}, fmt.Errorf("find the latest reconciliation: %w", ErrNotFound)
	}
	return s.Reconciliation(ctx, latest)
}
