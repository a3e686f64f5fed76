package tests

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/handoff-hq/handoff/action"
)

// TestAnOrderHistoryHoldsReferencesNotCopies decrypts a completed order's
// history and finds where the customer's e-mail address and name are: in
// the order as placed and in the inputs of the steps that hand them to a
// provider, nowhere else (no result, memo, marker or failure), and the
// confirmation's text nowhere at all: the activity writes it.
func TestAnOrderHistoryHoldsReferencesNotCopies(t *testing.T) {
	o := order("minimal-1")
	o.Customer.Name = "Grace Minimal-Hopper"
	if status, _, body := call(t, http.MethodPost, "/v1/orders", o, testToken); status != http.StatusAccepted {
		t.Fatalf("place order: %d %s", status, body)
	}
	awaitOrder(t, o.OrderID, action.StatusCompleted)

	where := map[string][]string{} // planted value → events holding it
	activityOf := map[int64]string{}
	iter := env.client.GetWorkflowHistory(context.Background(), action.OrderKey(o.OrderID).String(), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		e, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		place := e.GetEventType().String()
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil {
			activityOf[e.GetEventId()] = a.GetActivityType().GetName()
			place += " " + a.GetActivityType().GetName()
		}
		if a := e.GetActivityTaskCompletedEventAttributes(); a != nil {
			place += " " + activityOf[a.GetScheduledEventId()]
		}
		for _, text := range decodedPayloads(t, e) {
			for _, v := range []string{o.Customer.Email, o.Customer.Name, "hank you", "Your order"} {
				if strings.Contains(text, v) && !slices.Contains(where[v], place) {
					where[v] = append(where[v], place)
				}
			}
		}
	}
	started, scheduled := "WorkflowExecutionStarted", "ActivityTaskScheduled "
	for v, want := range map[string][]string{
		o.Customer.Email: {started, scheduled + "UpsertCustomer", scheduled + "CreateCharge", scheduled + "SendEmail"},
		o.Customer.Name:  {started, scheduled + "UpsertCustomer", scheduled + "SendEmail"},
		"hank you":       nil,
		"Your order":     nil,
	} {
		slices.Sort(want)
		slices.Sort(where[v])
		if !slices.Equal(where[v], want) {
			t.Errorf("%q is in %q, want only in %q", v, where[v], want)
		}
	}
}

// decodedPayloads are the data of every payload an event holds, decrypted
// with the test key.
func decodedPayloads(t *testing.T, e *historypb.HistoryEvent) []string {
	t.Helper()
	var payloads []*commonpb.Payload
	collectPayloads(e.ProtoReflect(), &payloads)
	decoded, err := testEncryption().Decode(payloads)
	if err != nil {
		t.Fatalf("decode the payloads of event %d: %v", e.GetEventId(), err)
	}
	var out []string
	for _, p := range decoded {
		out = append(out, string(p.GetData()))
	}
	return out
}

// collectPayloads finds every Payload in a message, however deep.
func collectPayloads(m protoreflect.Message, out *[]*commonpb.Payload) {
	if p, ok := m.Interface().(*commonpb.Payload); ok {
		*out = append(*out, proto.Clone(p).(*commonpb.Payload))
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
			return true
		}
		switch {
		case fd.IsList():
			for i := 0; i < v.List().Len(); i++ {
				collectPayloads(v.List().Get(i).Message(), out)
			}
		case fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					collectPayloads(mv.Message(), out)
					return true
				})
			}
		default:
			collectPayloads(v.Message(), out)
		}
		return true
	})
}
