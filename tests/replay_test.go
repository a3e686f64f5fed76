package tests

import (
	"context"
	"encoding/base64"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/codec"
	"github.com/handoff-hq/handoff/providers/sandbox"
	"github.com/handoff-hq/handoff/worker"
)

// update re-records the committed histories (make histories). Histories of
// earlier workflow versions keep a version suffix (_v0_polling, _v1,
// _v2_text) and are not re-recorded: they prove that workflows started
// before a change still replay.
var update = flag.Bool("update", false, "write recorded histories to testdata/histories")

const historiesDir = "testdata/histories"

// recorded are the workflow histories kept under testdata: each a real run
// of one path through the order workflow.
var recorded = []struct {
	file   string
	order  func() action.Order
	status action.Status
	// before runs ahead of placing the order, then after placing it.
	before, then func(t *testing.T, orderID string)
	// also records the history of a further workflow the path started.
	also *alsoRecorded
}{
	{"order_completed.json", func() action.Order { return order("history-completed") }, action.StatusCompleted, nil, nil, nil},
	{"order_declined.json", func() action.Order {
		o := order("history-declined")
		o.Customer.Email = "decline@example.com"
		return o
	}, action.StatusRejected, nil, nil, nil},
	{"order_parked.json", func() action.Order { return order(rejectInvoicePrefix + "history") }, action.StatusNeedsAttention, nil, nil, nil},
	{"order_parked_then_retried.json", func() action.Order { return order("history-retried") }, action.StatusCompleted,
		func(t *testing.T, id string) {
			addFault(t, sandbox.Fault{System: "accounting", Operation: "create_invoice", KeyPrefix: action.OrderKey(id).String() + "/",
				Mode: sandbox.FaultStatus, Status: 422, Count: 1})
		},
		func(t *testing.T, id string) {
			awaitOrder(t, id, action.StatusNeedsAttention)
			if status, body := operatorCall(t, "/v1/actions/"+action.OrderKey(id).Step("retry").String(), map[string]string{"reason": "fixed"}); status != http.StatusOK {
				t.Fatalf("retry: %d %s", status, body)
			}
		}, nil},
	{"order_cancelled.json", func() action.Order { return order("history-cancelled") }, action.StatusCancelled,
		func(t *testing.T, id string) {
			addFault(t, sandbox.Fault{System: "mail", Operation: "send_message", KeyPrefix: action.OrderKey(id).String() + "/",
				Mode: sandbox.FaultStatus, Status: 422, Count: 1})
		},
		func(t *testing.T, id string) {
			awaitOrder(t, id, action.StatusNeedsAttention)
			if status, _, body := call(t, http.MethodPost, "/v1/orders/"+id+"/cancel", nil, testToken); status != http.StatusAccepted {
				t.Fatalf("cancel: %d %s", status, body)
			}
		}, nil},
	{"order_early_events.json", func() action.Order { return order("history-early") }, action.StatusCompleted, func(t *testing.T, id string) {
		chargeAhead(t, id)
		waitFor(t, "the early events", func() bool {
			d, ok := lastDelivery(env.sandbox, action.OrderKey(id).Step("charge").String(), "payment.succeeded")
			return ok && d.Delivered
		})
	}, nil, nil},
	// One event for an order that comes only after the orphan window: the
	// first workflow task, held back for the window, parks the event for an
	// operator; the order placed afterwards goes on from there. (The
	// provider's own webhooks for the charge are held back past it all.)
	{"order_early_event_orphaned.json", func() action.Order { return order("history-orphaned") }, action.StatusCompleted, func(t *testing.T, id string) {
		addFault(t, sandbox.Fault{System: "payments", Mode: sandbox.FaultDelayWebhooks, KeyPrefix: action.OrderKey(id).String() + "/",
			LatencyMS: int(3 * testOrphanWindow / time.Millisecond), Count: 2})
		charge := chargeAhead(t, id)
		if status := postWebhook(t, "msg_history_orphaned", id, charge.ID); status/100 != 2 {
			t.Fatalf("early webhook: %d", status)
		}
		awaitOrder(t, id, action.StatusNeedsAttention)
	}, nil, nil},
	// Cancelled through Temporal while the charge call is in flight: the
	// order waits for the call, and refunds the charge that settled.
	{"order_cancelled_during_charge.json", func() action.Order { return order("history-cancelled-in-flight") }, action.StatusCancelled,
		func(t *testing.T, id string) {
			slowCharge(t, id, time.Second)
			settleBeforeCancel(t, id)
		},
		func(t *testing.T, id string) {
			awaitChargeCall(t, id)
			if err := env.client.CancelWorkflow(context.Background(), action.OrderKey(id).String(), ""); err != nil {
				t.Fatal(err)
			}
		}, nil},
	// Cancelled while the charge is pending: it is cancelled at the provider.
	{"order_cancelled_charge_cancelled.json", func() action.Order { return heldOrder("history-charge-cancelled") }, action.StatusCancelled, nil,
		func(t *testing.T, id string) {
			awaitOrder(t, id, action.StatusAwaitingPayment)
			if status, _, body := call(t, http.MethodPost, "/v1/orders/"+id+"/cancel", nil, testToken); status != http.StatusAccepted {
				t.Fatalf("cancel: %d %s", status, body)
			}
		}, nil},
	// The charge cannot be cancelled; an operator skips the step with a
	// reason; the payment succeeds later and is refunded by the
	// late-payment workflow.
	{"order_cancel_charge_skipped.json", func() action.Order { return heldOrder("history-skipped-cancel") }, action.StatusCancelled,
		func(t *testing.T, id string) {
			addFault(t, sandbox.Fault{System: "payments", Operation: "cancel_charge", KeyPrefix: action.OrderKey(id).String() + "/",
				Mode: sandbox.FaultStatus, Status: 403, Count: 1})
		},
		func(t *testing.T, id string) {
			awaitOrder(t, id, action.StatusAwaitingPayment)
			if status, _, body := call(t, http.MethodPost, "/v1/orders/"+id+"/cancel", nil, testToken); status != http.StatusAccepted {
				t.Fatalf("cancel: %d %s", status, body)
			}
			awaitOrder(t, id, action.StatusNeedsAttention)
			if status, body := operatorCall(t, "/v1/actions/"+action.OrderKey(id).Step("skip").String(), map[string]string{"reason": "cancelled by hand"}); status != http.StatusOK {
				t.Fatalf("skip: %d %s", status, body)
			}
		},
		&alsoRecorded{file: "order_late_payment.json", workflowID: func(t *testing.T, id string) string { return latePaymentID(id, chargeOf(t, id).ID) },
			await: func(t *testing.T, id string) {
				settle(t, chargeOf(t, id).ID, "succeeded")
				awaitCompleted(t, env.client, latePaymentID(id, chargeOf(t, id).ID))
			}}},
}

// heldOrder is an order whose charge never settles by itself.
func heldOrder(id string) action.Order {
	o := order(id)
	o.Customer.Email = sandbox.HoldEmailPrefix + "+" + id + "@example.com"
	return o
}

// settle settles a pending charge at the sandbox, as a customer completing
// (or failing) the payment late.
func settle(t *testing.T, chargeID, status string) {
	t.Helper()
	resp, err := http.Post(env.provider.URL+"/_sandbox/charges/"+chargeID+"/settle", "application/json", strings.NewReader(`{"status":"`+status+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("settle %s: %d", chargeID, resp.StatusCode)
	}
}

// awaitCompleted waits until a workflow has completed.
func awaitCompleted(t *testing.T, c client.Client, workflowID string) {
	t.Helper()
	waitFor(t, workflowID+" to complete", func() bool {
		desc, err := c.DescribeWorkflow(context.Background(), workflowID, "")
		return err == nil && desc.RawResponse.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
	})
}

// alsoRecorded is a further workflow a recorded path starts.
type alsoRecorded struct {
	file       string
	workflowID func(t *testing.T, orderID string) string
	// await waits until the workflow has finished.
	await func(t *testing.T, orderID string)
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
			writeHistory(t, action.OrderKey(o.OrderID).String(), path)
			if r.status == action.StatusNeedsAttention {
				_ = env.client.TerminateWorkflow(context.Background(), action.OrderKey(o.OrderID).String(), "", "history recorded")
			}
			if err := worker.ReplayFilesWith(slog.New(slog.DiscardHandler), testEncryption(), path); err != nil {
				t.Errorf("replay fresh history: %v", err)
			}
			if a := r.also; a != nil {
				a.await(t, o.OrderID)
				recordHistory(t, env.client, a.workflowID(t, o.OrderID), a.file)
			}
		})
	}
}

// recordHistory writes a workflow's history to the histories directory
// under -update (to a temporary one otherwise) and replays it.
func recordHistory(t *testing.T, c client.Client, workflowID, file string) {
	t.Helper()
	recordRunHistory(t, c, workflowID, "", file)
}

// recordRunHistory is recordHistory of one run (the latest when runID is
// empty).
func recordRunHistory(t *testing.T, c client.Client, workflowID, runID, file string) {
	t.Helper()
	dir := t.TempDir()
	if *update {
		dir = historiesDir
	}
	path := filepath.Join(dir, file)
	writeRunHistoryFrom(t, c, workflowID, runID, path)
	if err := worker.ReplayFilesWith(slog.New(slog.DiscardHandler), testEncryption(), path); err != nil {
		t.Errorf("replay fresh history of %s: %v", workflowID, err)
	}
}

// TestReplayCommittedHistories proves that the current workflow code still
// reproduces every committed history: a change that would break running
// workflows fails here.
func TestReplayCommittedHistories(t *testing.T) {
	selfContained(t)
	paths, err := filepath.Glob(filepath.Join(historiesDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < len(recorded) {
		t.Fatalf("found %d histories in %s, want at least %d: record them with `make histories`", len(paths), historiesDir, len(recorded))
	}
	encrypted := base64.StdEncoding.EncodeToString([]byte(codec.EncodingEncrypted))
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			if err := worker.ReplayFilesWith(slog.New(slog.DiscardHandler), testEncryption(), path); err != nil {
				t.Errorf("replay: %v", err)
			}
			// Histories of the current versions are recorded encrypted,
			// with the test key (_v2_text too); those of earlier versions
			// (_v0_, _v1) were recorded before encryption and stay
			// plaintext, which the same reader reads.
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			earlier := strings.Contains(path, "_v0_") || strings.Contains(path, "_v1")
			if got := strings.Contains(string(raw), encrypted); got == earlier {
				t.Errorf("encrypted: %v, want %v", got, !earlier)
			}
			if !earlier && strings.Contains(string(raw), "@example.com") {
				t.Error("an encrypted history holds an e-mail address in plain text")
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
	writeRunHistoryFrom(t, c, workflowID, "", path)
}

// writeRunHistoryFrom writes one run's history of a workflow (the latest
// when runID is empty); a still-running history is recorded up to its
// last completed task.
func writeRunHistoryFrom(t *testing.T, c client.Client, workflowID, runID, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var events []*historypb.HistoryEvent
	iter := c.GetWorkflowHistory(ctx, workflowID, runID, false, 0)
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

// latePaymentID is the workflow ID of the late-payment action of a charge.
func latePaymentID(orderID, chargeID string) string {
	return action.LatePaymentKey(orderID, chargeID).String()
}
