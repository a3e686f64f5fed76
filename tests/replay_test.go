package tests

import (
	"context"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"

	"github.com/handoff-hq/handoff/providers/sandbox"
	"github.com/handoff-hq/handoff/worker"
	"github.com/handoff-hq/handoff/workflows"
)

// update re-records the committed histories: go test ./tests -run TestRecordHistories -update
var update = flag.Bool("update", false, "write recorded histories to testdata/histories")

const historiesDir = "testdata/histories"

// recorded are the workflow histories kept under testdata: each a real run
// of one path through the order workflow.
var recorded = []struct {
	file   string
	order  func() workflows.Order
	status string
	// before runs ahead of placing the order, then after placing it.
	before, then func(t *testing.T, orderID string)
}{
	{"order_completed.json", func() workflows.Order { return order("history-completed") }, workflows.StatusCompleted, nil, nil},
	{"order_declined.json", func() workflows.Order {
		o := order("history-declined")
		o.Customer.Email = "decline@example.com"
		return o
	}, workflows.StatusRejected, nil, nil},
	{"order_parked.json", func() workflows.Order { return order(rejectInvoicePrefix + "history") }, workflows.StatusNeedsAttention, nil, nil},
	{"order_parked_then_retried.json", func() workflows.Order { return order("history-retried") }, workflows.StatusCompleted,
		func(t *testing.T, id string) {
			addFault(t, sandbox.Fault{System: "accounting", Operation: "create_invoice", KeyPrefix: workflows.OrderWorkflowID(id) + "/",
				Mode: sandbox.FaultStatus, Status: 422, Count: 1})
		},
		func(t *testing.T, id string) {
			awaitOrder(t, id, workflows.StatusNeedsAttention)
			if status, body := operatorCall(t, "/v1/actions/"+workflows.OrderWorkflowID(id)+"/retry", map[string]string{"reason": "fixed"}); status != http.StatusOK {
				t.Fatalf("retry: %d %s", status, body)
			}
		}},
	{"order_cancelled.json", func() workflows.Order { return order("history-cancelled") }, workflows.StatusCancelled,
		func(t *testing.T, id string) {
			addFault(t, sandbox.Fault{System: "mail", Operation: "send_message", KeyPrefix: workflows.OrderWorkflowID(id) + "/",
				Mode: sandbox.FaultStatus, Status: 422, Count: 1})
		},
		func(t *testing.T, id string) {
			awaitOrder(t, id, workflows.StatusNeedsAttention)
			if status, _, body := call(t, http.MethodPost, "/v1/orders/"+id+"/cancel", nil, testToken); status != http.StatusAccepted {
				t.Fatalf("cancel: %d %s", status, body)
			}
		}},
	{"order_early_events.json", func() workflows.Order { return order("history-early") }, workflows.StatusCompleted, func(t *testing.T, id string) {
		chargeAhead(t, id)
		waitFor(t, "the early events", func() bool {
			d, ok := lastDelivery(env.sandbox, workflows.OrderWorkflowID(id)+"/charge", "payment.succeeded")
			return ok && d.Delivered
		})
	}, nil},
}

// TestRecordHistories runs each recorded path afresh, replays its history
// against the current code, and with -update stores it in testdata.
func TestRecordHistories(t *testing.T) {
	dir := t.TempDir()
	if *update {
		dir = historiesDir
	}
	for _, r := range recorded {
		t.Run(r.file, func(t *testing.T) {
			o := r.order()
			if r.before != nil {
				r.before(t, o.OrderID)
			}
			status, _, body := call(t, http.MethodPost, "/v1/orders", o, testToken)
			if status != http.StatusAccepted {
				t.Fatalf("place order: %d %s", status, body)
			}
			if r.then != nil {
				r.then(t, o.OrderID)
			}
			awaitOrder(t, o.OrderID, r.status)
			path := filepath.Join(dir, r.file)
			writeHistory(t, workflows.OrderWorkflowID(o.OrderID), path)
			if r.status == workflows.StatusNeedsAttention {
				_ = env.client.TerminateWorkflow(context.Background(), workflows.OrderWorkflowID(o.OrderID), "", "history recorded")
			}
			if err := worker.ReplayFiles(slog.New(slog.DiscardHandler), path); err != nil {
				t.Errorf("replay fresh history: %v", err)
			}
		})
	}
}

// TestReplayCommittedHistories proves that the current workflow code still
// reproduces every committed history: a change that would break running
// workflows fails here.
func TestReplayCommittedHistories(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(historiesDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < len(recorded) {
		t.Fatalf("found %d histories in %s, want at least %d: record them with `make histories`", len(paths), historiesDir, len(recorded))
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			if err := worker.ReplayFiles(slog.New(slog.DiscardHandler), path); err != nil {
				t.Errorf("replay: %v", err)
			}
		})
	}
}

func writeHistory(t *testing.T, workflowID, path string) {
	t.Helper()
	writeHistoryFrom(t, env.client, workflowID, path)
}

// writeHistoryFrom writes the latest run's history of a workflow.
func writeHistoryFrom(t *testing.T, c client.Client, workflowID, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A still-running history is recorded up to its last completed task.
	var events []*historypb.HistoryEvent
	iter := c.GetWorkflowHistory(ctx, workflowID, "", false, 0)
	for iter.HasNext() {
		e, err := iter.Next()
		if err != nil {
			t.Fatalf("read history of %s: %v", workflowID, err)
		}
		events = append(events, e)
	}
	raw, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(&historypb.History{Events: events})
	if err != nil {
		t.Fatalf("encode history: %v", err)
	}
	if err := os.WriteFile(path, append(raw, '\n'), 0o644); err != nil {
		t.Fatalf("write history: %v", err)
	}
}
