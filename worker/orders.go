package worker

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/activities"
	"github.com/handoff-hq/handoff/workflows"
)

// orderLookup reads orders' standings from Temporal for reconciliation.
type orderLookup struct {
	client client.Client
}

// OrderStandings describes each order's workflow; a finished order's
// skipped steps come from its result.
func (l orderLookup) OrderStandings(ctx context.Context, keys []string) (map[string]activities.OrderStanding, error) {
	out := map[string]activities.OrderStanding{}
	for _, key := range keys {
		if key == "" {
			out[key] = activities.OrderStanding{} // a difference of no action's
			continue
		}
		desc, err := l.client.DescribeWorkflow(ctx, key, "")
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			out[key] = activities.OrderStanding{}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("describe %s: %w", key, err)
		}
		info := desc.RawResponse.GetWorkflowExecutionInfo()
		st := activities.OrderStanding{Exists: true}
		if p, ok := info.GetSearchAttributes().GetIndexedFields()[workflows.SearchStatus.GetName()]; ok {
			var status string
			_ = converter.GetDefaultDataConverter().FromPayload(p, &status) // unreadable reads as unknown
			st.Status = action.Status(status)
		}
		switch info.GetStatus() {
		case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
			st.Running = true
		case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
			var result workflows.OrderResult
			if err := l.client.GetWorkflow(ctx, key, "").Get(ctx, &result); err != nil {
				return nil, fmt.Errorf("read %s: %w", key, err)
			}
			st.Status = result.State.Status
			for _, s := range result.State.Steps {
				if s.Status == action.StepSkipped {
					st.Skipped = append(st.Skipped, s.Name)
				}
			}
		default:
			if st.Status == "" {
				st.Status = action.Status("ended (" + info.GetStatus().String() + ")")
			}
		}
		out[key] = st
	}
	return out, nil
}

// customerNews hands records to customers' workflows as signals.
type customerNews struct {
	client client.Client
}

// DeliverCustomerRecord signals the customer's running workflow.
func (n customerNews) DeliverCustomerRecord(ctx context.Context, customerID string, ch action.CustomerChange) error {
	id := action.CustomerKey(customerID).String()
	if err := n.client.SignalWorkflow(ctx, id, "", workflows.SignalCustomerChange, ch); err != nil {
		return fmt.Errorf("signal %s: %w", id, err)
	}
	return nil
}
