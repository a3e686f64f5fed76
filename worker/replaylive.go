package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"

	historypb "go.temporal.io/api/history/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/handoff-hq/handoff/codec"
)

// LiveReplayOptions say which histories ReplayFromTemporal fetches.
type LiveReplayOptions struct {
	// Open and Closed bound the running and the most recently closed
	// workflows fetched of each type; zero means 20 and 200.
	Open, Closed int
	// Query narrows the workflows further (a visibility query, joined with
	// AND), such as `HandoffBusinessKey STARTS_WITH "A-"`.
	Query string
	// Encryption holds the payload keys (nil when payloads are plain).
	Encryption *codec.Encryption
	// Register registers the workflows to check; default the ones this
	// binary runs. Tests register other code under the same names.
	Register func(sdkworker.WorkflowRegistry)
	// Progress, when set, is told of each history replayed.
	Progress func(done, total int)
}

// LiveReplayReport is what ReplayFromTemporal found.
type LiveReplayReport struct {
	// Replayed counts the histories replayed, by workflow type; Open
	// counts those of running workflows among them.
	Replayed map[string]int `json:"replayed"`
	Open     int            `json:"open"`
	// Failures are the histories the code does not reproduce.
	Failures []ReplayFailure `json:"failures"`
}

// ReplayFailure is one history the code does not reproduce.
type ReplayFailure struct {
	WorkflowType string `json:"workflow_type"`
	WorkflowID   string `json:"workflow_id"`
	RunID        string `json:"run_id"`
	Open         bool   `json:"open"`
	// Command is the first difference, as the SDK reports it: what the
	// history holds against what the code did.
	Command string `json:"command"`
	Error   string `json:"error"`
}

// replayedTypes are the workflow types handoff runs.
var replayedTypes = []string{"OrderWorkflow", "CustomerWorkflow", "ProviderControlWorkflow", "ReconcileWorkflow", "ContractDriftWorkflow"}

// ReplayFromTemporal fetches a bounded sample of the histories Temporal
// holds of every handoff workflow type, the running ones and the most
// recently closed, and replays each against the workflow code: what a
// release would do to the workflows it inherits, found before it is
// deployed. A history the code does not reproduce is a failure in the
// report, with the first differing command; an error means the check
// itself could not be made.
func ReplayFromTemporal(ctx context.Context, c client.Client, logger *slog.Logger, opts LiveReplayOptions) (LiveReplayReport, error) {
	if opts.Open <= 0 {
		opts.Open = 20
	}
	if opts.Closed <= 0 {
		opts.Closed = 200
	}
	if opts.Register == nil {
		opts.Register = func(r sdkworker.WorkflowRegistry) { registerWorkflows(r, nil) }
	}
	replayer, err := sdkworker.NewWorkflowReplayerWithOptions(sdkworker.WorkflowReplayerOptions{
		DataConverter: codec.DataConverter(opts.Encryption), FailureConverter: codec.FailureConverter(opts.Encryption),
	})
	if err != nil {
		return LiveReplayReport{}, fmt.Errorf("replayer: %w", err)
	}
	opts.Register(replayer)

	type sample struct {
		typ, id, run string
		open         bool
	}
	var samples []sample
	for _, typ := range replayedTypes {
		for _, open := range []bool{true, false} {
			q := fmt.Sprintf(`WorkflowType = %q AND ExecutionStatus != "Running"`, typ)
			limit := opts.Closed
			if open {
				q, limit = fmt.Sprintf(`WorkflowType = %q AND ExecutionStatus = "Running"`, typ), opts.Open
			}
			if opts.Query != "" {
				q += " AND (" + opts.Query + ")"
			}
			execs, err := listExecutions(ctx, c, q, limit)
			if err != nil {
				return LiveReplayReport{}, err
			}
			for _, e := range execs {
				samples = append(samples, sample{typ: typ, id: e.GetExecution().GetWorkflowId(), run: e.GetExecution().GetRunId(), open: open})
			}
		}
	}

	report := LiveReplayReport{Replayed: map[string]int{}, Failures: []ReplayFailure{}}
	for i, s := range samples {
		history, err := fetchHistory(ctx, c, s.id, s.run)
		if err != nil {
			return report, err
		}
		if err := replayer.ReplayWorkflowHistory(sdklog.NewStructuredLogger(logger), history); err != nil {
			if errors.Is(err, codec.ErrUnknownKey) {
				return report, fmt.Errorf("replay %s: %w", s.id, err)
			}
			report.Failures = append(report.Failures, ReplayFailure{WorkflowType: s.typ, WorkflowID: s.id, RunID: s.run, Open: s.open,
				Command: firstDifference(err, history), Error: err.Error()})
		}
		report.Replayed[s.typ]++
		if s.open {
			report.Open++
		}
		if opts.Progress != nil {
			opts.Progress(i+1, len(samples))
		}
	}
	return report, nil
}

// listExecutions lists up to limit workflows the query matches, most
// recent first.
func listExecutions(ctx context.Context, c client.Client, query string, limit int) ([]*workflowpb.WorkflowExecutionInfo, error) {
	var out []*workflowpb.WorkflowExecutionInfo
	var token []byte
	for len(out) < limit {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: query, PageSize: int32(min(limit-len(out), 1000)), NextPageToken: token,
		})
		if err != nil {
			return nil, fmt.Errorf("list workflows (%s): %w", query, err)
		}
		out = append(out, resp.GetExecutions()...)
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	return out[:min(len(out), limit)], nil
}

func fetchHistory(ctx context.Context, c client.Client, workflowID, runID string) (*historypb.History, error) {
	history := &historypb.History{}
	iter := c.GetWorkflowHistory(ctx, workflowID, runID, false, 0)
	for iter.HasNext() {
		e, err := iter.Next()
		if err != nil {
			return nil, fmt.Errorf("read the history of %s: %w", workflowID, err)
		}
		history.Events = append(history.Events, e)
	}
	return history, nil
}

var (
	// nondeterminism finds the SDK's account of the first difference:
	// the history's event against the code's command.
	nondeterminism = regexp.MustCompile(`(?i)nondeterministic workflow[^:]*: (.*)`)
	// eventRef finds the history event a replay error refers to by id.
	eventRef = regexp.MustCompile(`(?i)(?:scheduledEventID|scheduleEventID|eventID|event ID)[:=]? *(\d+)`)
)

// firstDifference says where a history and the code part: the SDK's
// account when it gives both sides, else the history event it refers to,
// which the code did not reproduce.
func firstDifference(err error, h *historypb.History) string {
	msg := err.Error()
	if m := nondeterminism.FindStringSubmatch(msg); m != nil {
		return strings.TrimSpace(m[1])
	}
	if m := eventRef.FindStringSubmatch(msg); m != nil {
		id, _ := strconv.ParseInt(m[1], 10, 64)
		for _, e := range h.GetEvents() {
			if e.GetEventId() == id {
				return fmt.Sprintf("history event %d, %s, is not what the code does there (%s)", id, describeEvent(e), msg)
			}
		}
	}
	return msg
}

// describeEvent names a command's event: its type and what it is about.
func describeEvent(e *historypb.HistoryEvent) string {
	name := e.GetEventType().String() // ActivityTaskScheduled
	switch {
	case e.GetActivityTaskScheduledEventAttributes() != nil:
		a := e.GetActivityTaskScheduledEventAttributes()
		return fmt.Sprintf("%s %s (activity %s)", name, a.GetActivityType().GetName(), a.GetActivityId())
	case e.GetTimerStartedEventAttributes() != nil:
		return fmt.Sprintf("%s (timer %s)", name, e.GetTimerStartedEventAttributes().GetTimerId())
	case e.GetMarkerRecordedEventAttributes() != nil:
		return fmt.Sprintf("%s %s", name, e.GetMarkerRecordedEventAttributes().GetMarkerName())
	}
	return name
}
