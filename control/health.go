package control

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/system"
	"github.com/handoff-hq/handoff/workflows"
)

// maxAttentionRead bounds how many parked actions one health read lists.
const maxAttentionRead = 1000

// Health is what Temporal holds about handoff's state, as the operations
// page and the metrics show it: every provider's pause and backlog, and the
// actions waiting for an operator.
type Health struct {
	Providers []ProviderStatus `json:"providers"`
	// Attention counts the actions needing attention by kind, step and
	// provider; Parked lists the oldest of them, oldest first.
	Attention []AttentionCount `json:"attention"`
	Parked    []Action         `json:"parked"`
	// ParkedTotal counts every parked action read; Truncated is set when
	// there were more than a read lists.
	ParkedTotal int  `json:"parked_total"`
	Truncated   bool `json:"truncated,omitempty"`
	// OldestParkedAt is when the oldest action waiting for an operator
	// was placed; zero when none waits.
	OldestParkedAt time.Time `json:"oldest_parked_at"`
	ReadAt         time.Time `json:"read_at"`
}

// AttentionCount is how many actions of one kind wait at one step of one
// provider.
type AttentionCount struct {
	Kind     string `json:"kind"`
	Step     string `json:"step"`
	Provider string `json:"provider"`
	Count    int    `json:"count"`
}

// Health reads every provider's state and up to maxAttentionRead actions
// needing attention. Parked lists at most listParked of them.
func (s *Client) Health(ctx context.Context, listParked int) (Health, error) {
	h := Health{ReadAt: time.Now()}
	paused, err := s.paused(ctx)
	if err != nil {
		return h, err
	}
	state := workflows.ProviderControlState{Paused: paused}
	for _, name := range system.Names() {
		st, err := s.status(ctx, name, state)
		if err != nil {
			return h, err
		}
		h.Providers = append(h.Providers, st)
	}
	query, _ := ActionFilter{Status: string(action.StatusNeedsAttention)}.query()
	counts := map[AttentionCount]int{}
	var parked []Action
	var token []byte
	for {
		resp, err := s.client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, PageSize: 100, NextPageToken: token})
		if err != nil {
			return h, fmt.Errorf("list parked actions: %w", err)
		}
		for _, e := range resp.GetExecutions() {
			a := Action{
				WorkflowID: e.GetExecution().GetWorkflowId(), BusinessKey: keyword(e, workflows.SearchBusinessKey.GetName()),
				Status: action.StatusNeedsAttention, Step: keyword(e, workflows.SearchStep.GetName()),
				ErrorCategory: keyword(e, workflows.SearchErrorCategory.GetName()), Provider: keyword(e, workflows.SearchProvider.GetName()),
				Reason: memoOf(s.dc, e)[workflows.MemoReason], StartedAt: e.GetStartTime().AsTime(),
			}
			kind := "unknown"
			if k, err := action.ParseKey(a.WorkflowID); err == nil {
				kind = string(k.Kind)
			}
			counts[AttentionCount{Kind: kind, Step: a.Step, Provider: a.Provider}]++
			parked = append(parked, a)
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			break
		}
		if len(parked) >= maxAttentionRead {
			h.Truncated = true
			break
		}
	}
	for c, n := range counts {
		c.Count = n
		h.Attention = append(h.Attention, c)
	}
	slices.SortFunc(h.Attention, func(a, b AttentionCount) int {
		return strings.Compare(a.Kind+"/"+a.Step+"/"+a.Provider, b.Kind+"/"+b.Step+"/"+b.Provider)
	})
	slices.SortStableFunc(parked, func(a, b Action) int { return a.StartedAt.Compare(b.StartedAt) })
	h.ParkedTotal = len(parked)
	if len(parked) > 0 {
		h.OldestParkedAt = parked[0].StartedAt
	}
	h.Parked = parked[:min(len(parked), max(listParked, 0))]
	return h, nil
}
