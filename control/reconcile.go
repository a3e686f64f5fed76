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

// Reconciliation returns a finished reconciliation's report, or ErrRunning.
func (s *Client) Reconciliation(ctx context.Context, id string) (workflows.ReconcileReport, error) {
	info, err := s.describe(ctx, id)
	if err != nil {
		return workflows.ReconcileReport{}, fmt.Errorf("read reconciliation %s: %w", id, err)
	}
	if info.GetType().GetName() != "ReconcileWorkflow" {
		return workflows.ReconcileReport{}, fmt.Errorf("read reconciliation %s: %w", id, ErrNotFound)
	}
	if info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return workflows.ReconcileReport{ID: id}, fmt.Errorf("read reconciliation %s: %w", id, ErrRunning)
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
