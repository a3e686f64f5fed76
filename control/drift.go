package control

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/client"

	"github.com/handoff-hq/handoff/workflows"
)

// ContractDrift returns every way providers' answers differed from their
// contracts, as the workers reported it: from the contract drift
// workflow's memo, without a worker. None is reported as an empty list.
func (s *Client) ContractDrift(ctx context.Context) ([]workflows.DriftSighting, error) {
	info, err := s.describe(ctx, workflows.ContractDriftID)
	if errors.Is(err, ErrNotFound) {
		return []workflows.DriftSighting{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read contract drift: %w", err)
	}
	out := []workflows.DriftSighting{}
	if p, ok := info.GetMemo().GetFields()[workflows.MemoDrift]; ok {
		if err := s.dc.FromPayload(p, &out); err != nil {
			return nil, fmt.Errorf("read contract drift: %w", err)
		}
	}
	return out, nil
}

// ClearContractDrift forgets the drift of one system (every system when
// system is empty), once its contract has been reviewed; what the workers
// see afterwards is reported again. It returns what remains.
func (s *Client) ClearContractDrift(ctx context.Context, system, reason string) ([]workflows.DriftSighting, error) {
	start := s.client.NewWithStartWorkflowOperation(workflows.ContractDriftStart(), workflows.ContractDriftWorkflow, workflows.ContractDriftState{})
	handle, err := s.client.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateName: workflows.UpdateClearDrift, Args: []any{workflows.ClearDriftRequest{System: system, Reason: reason}},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	var state workflows.ContractDriftState
	if err == nil {
		err = handle.Get(ctx, &state)
	}
	if err != nil {
		return nil, fmt.Errorf("clear contract drift: %w", err)
	}
	if state.Drift == nil {
		state.Drift = []workflows.DriftSighting{}
	}
	return state.Drift, nil
}
