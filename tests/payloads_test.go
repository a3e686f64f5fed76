package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/codec"
	"github.com/handoff-hq/handoff/workflows"
)

// argumentTypes are the Go types of the workflows', updates' and signals'
// arguments, by name.
var argumentTypes = map[string]reflect.Type{
	"OrderWorkflow":                     reflect.TypeFor[workflows.OrderInput](),
	"CustomerWorkflow":                  reflect.TypeFor[workflows.CustomerInput](),
	"ProviderControlWorkflow":           reflect.TypeFor[workflows.ProviderControlState](),
	"ReconcileWorkflow":                 reflect.TypeFor[workflows.ReconcileInput](),
	"ContractDriftWorkflow":             reflect.TypeFor[workflows.ContractDriftState](),
	workflows.SignalContractDrift:       reflect.TypeFor[[]workflows.DriftSighting](),
	workflows.UpdateClearDrift:          reflect.TypeFor[workflows.ClearDriftRequest](),
	workflows.UpdatePlaceOrder:          reflect.TypeFor[workflows.PlaceOrderRequest](),
	workflows.UpdatePutCustomer:         reflect.TypeFor[workflows.PutCustomerRequest](),
	workflows.UpdatePauseProvider:       reflect.TypeFor[workflows.ProviderRequest](),
	workflows.UpdateResumeProvider:      reflect.TypeFor[workflows.ProviderRequest](),
	workflows.UpdateRetry:               reflect.TypeFor[workflows.OperatorRequest](),
	workflows.UpdateSkip:                reflect.TypeFor[workflows.OperatorRequest](),
	workflows.UpdateAbort:               reflect.TypeFor[workflows.OperatorRequest](),
	workflows.UpdateCancel:              reflect.TypeFor[workflows.OperatorRequest](),
	workflows.SignalPaymentEvent:        reflect.TypeFor[action.PaymentEvent](),
	workflows.SignalCustomerChange:      reflect.TypeFor[action.CustomerChange](),
	"OrderWorkflow result":              reflect.TypeFor[workflows.OrderResult](),
	"CustomerWorkflow result":           reflect.TypeFor[workflows.CustomerResult](),
	"ReconcileWorkflow result":          reflect.TypeFor[workflows.ReconcileReport](),
	"ProviderControlWorkflow result":    nil,
	workflows.UpdatePlaceOrder + " out": reflect.TypeFor[workflows.PlaceOrderResult](),
}

// TestEveryArgumentOfTheCommittedHistoriesIsReadInFull reads every
// workflow input and result, update and signal argument of every committed
// history into its Go type, as a worker of this release does, and checks
// that every value written is read: payloads of releases that named
// fields by their Go names (OrderID) are read into the fields now named in
// snake_case (order_id), none left empty.
func TestEveryArgumentOfTheCommittedHistoriesIsReadInFull(t *testing.T) {
	selfContained(t)
	paths, err := filepath.Glob(filepath.Join(historiesDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	dc := codec.DataConverter(testEncryption())
	checked, legacy := 0, 0
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		history, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		workflowType := ""
		updates := map[string]string{}
		for _, e := range history.GetEvents() {
			var name string
			var payloads *commonpb.Payloads
			switch a := e.GetAttributes().(type) {
			case *historypb.HistoryEvent_WorkflowExecutionStartedEventAttributes:
				workflowType = a.WorkflowExecutionStartedEventAttributes.GetWorkflowType().GetName()
				name, payloads = workflowType, a.WorkflowExecutionStartedEventAttributes.GetInput()
			case *historypb.HistoryEvent_WorkflowExecutionCompletedEventAttributes:
				name, payloads = workflowType+" result", a.WorkflowExecutionCompletedEventAttributes.GetResult()
			case *historypb.HistoryEvent_WorkflowExecutionSignaledEventAttributes:
				name, payloads = a.WorkflowExecutionSignaledEventAttributes.GetSignalName(), a.WorkflowExecutionSignaledEventAttributes.GetInput()
			case *historypb.HistoryEvent_WorkflowExecutionUpdateAcceptedEventAttributes:
				req := a.WorkflowExecutionUpdateAcceptedEventAttributes.GetAcceptedRequest()
				updates[a.WorkflowExecutionUpdateAcceptedEventAttributes.GetProtocolInstanceId()] = req.GetInput().GetName()
				name, payloads = req.GetInput().GetName(), req.GetInput().GetArgs()
			case *historypb.HistoryEvent_WorkflowExecutionUpdateCompletedEventAttributes:
				in := updates[a.WorkflowExecutionUpdateCompletedEventAttributes.GetMeta().GetUpdateId()]
				if in != workflows.UpdatePlaceOrder {
					continue
				}
				name, payloads = in+" out", a.WorkflowExecutionUpdateCompletedEventAttributes.GetOutcome().GetSuccess()
			default:
				continue
			}
			typ, known := argumentTypes[name]
			if !known {
				t.Errorf("%s: event %d carries %q, whose type this test does not know", filepath.Base(path), e.GetEventId(), name)
				continue
			}
			for _, p := range payloads.GetPayloads() {
				if typ == nil {
					continue
				}
				var written json.RawMessage
				if err := dc.FromPayload(p, &written); err != nil {
					t.Fatalf("%s: event %d: %v", filepath.Base(path), e.GetEventId(), err)
				}
				read := reflect.New(typ)
				if err := dc.FromPayload(p, read.Interface()); err != nil {
					t.Errorf("%s: event %d (%s): %v", filepath.Base(path), e.GetEventId(), name, err)
					continue
				}
				again, err := json.Marshal(read.Interface())
				if err != nil {
					t.Fatal(err)
				}
				for _, lost := range lostValues(t, written, again) {
					t.Errorf("%s: event %d (%s): %s", filepath.Base(path), e.GetEventId(), name, lost)
				}
				checked++
				if strings.Contains(string(written), `"OrderID"`) || strings.Contains(string(written), `"Reason"`) || strings.Contains(string(written), `"PageSize"`) {
					legacy++
				}
			}
		}
	}
	if checked < 100 || legacy < 20 {
		t.Errorf("checked %d payloads, %d of them with Go field names; want the committed histories' (over 100, over 20)", checked, legacy)
	}
}

// lostValues lists the values of written that read does not hold at the
// same place, keys compared without case or underscores. Zero values may
// be left out of read (omitempty).
func lostValues(t *testing.T, written, read []byte) []string {
	t.Helper()
	var w, r any
	if err := json.Unmarshal(written, &w); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(read, &r); err != nil {
		t.Fatal(err)
	}
	got := map[string]any{}
	flatten(r, "", got)
	want := map[string]any{}
	flatten(w, "", want)
	var lost []string
	for path, v := range want {
		g, ok := got[path]
		switch {
		case ok && reflect.DeepEqual(g, v):
		case !ok && isZero(v):
		default:
			lost = append(lost, fmt.Sprintf("%s: written %v, read %v", path, v, g))
		}
	}
	return lost
}

func flatten(v any, path string, out map[string]any) {
	switch v := v.(type) {
	case map[string]any:
		for k, val := range v {
			flatten(val, path+"/"+strings.ToLower(strings.ReplaceAll(k, "_", "")), out)
		}
	case []any:
		for i, val := range v {
			flatten(val, fmt.Sprintf("%s/%d", path, i), out)
		}
	default:
		out[path] = v
	}
}

func isZero(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == "" || v == "0001-01-01T00:00:00Z"
	case float64:
		return v == 0
	case bool:
		return !v
	}
	return false
}
