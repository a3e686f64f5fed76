package workflows

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/providers"
)

func TestPaymentTrackerApply(t *testing.T) {
	ev := func(id, status string, version int64) action.PaymentEvent {
		return action.PaymentEvent{EventID: id, ChargeID: "ch_1", Status: status, Version: version, Ordered: true}
	}
	tests := []struct {
		name          string
		events        []action.PaymentEvent
		wantStatus    string
		wantVersion   int64
		wantUndecided bool
		wantSettled   bool
	}{
		{"in order", []action.PaymentEvent{ev("e1", "pending", 1), ev("e2", "succeeded", 2)}, "succeeded", 2, false, true},
		{"late pending changes nothing", []action.PaymentEvent{ev("e2", "succeeded", 2), ev("e1", "pending", 1)}, "succeeded", 2, false, true},
		{"duplicate changes nothing", []action.PaymentEvent{ev("e1", "pending", 1), ev("e1", "pending", 1)}, "pending", 1, false, false},
		{"same version, other status: undecided", []action.PaymentEvent{ev("e1", "succeeded", 2), ev("e2", "failed", 2)}, "succeeded", 2, true, false},
		{"a newer event decides again", []action.PaymentEvent{ev("e1", "succeeded", 2), ev("e2", "failed", 2), ev("e3", "failed", 3)}, "failed", 3, false, true},
		{"no event id is ignored", []action.PaymentEvent{ev("", "succeeded", 2)}, "", 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p paymentTracker
			for _, e := range tt.events {
				p.apply(e)
			}
			if p.Status != tt.wantStatus || p.Version != tt.wantVersion || p.Undecided != tt.wantUndecided || p.settled() != tt.wantSettled {
				t.Errorf("tracker = %+v settled=%v; want status %q version %d undecided %v settled %v",
					p, p.settled(), tt.wantStatus, tt.wantVersion, tt.wantUndecided, tt.wantSettled)
			}
		})
	}
}

func TestPaymentTrackerIgnoresOtherCharges(t *testing.T) {
	p := paymentTracker{ChargeID: "ch_1"}
	if p.apply(action.PaymentEvent{EventID: "e1", ChargeID: "ch_2", Status: "succeeded", Version: 2}) || p.Status != "" {
		t.Errorf("an event about another charge was applied: %+v", p)
	}
}

func TestPaymentTrackerRemembersBoundedEventIDs(t *testing.T) {
	var p paymentTracker
	for i := range maxRememberedEvents + 10 {
		p.apply(action.PaymentEvent{EventID: string(rune('a'+i%26)) + string(rune(i)), ChargeID: "ch_1", Status: "pending", Version: int64(i + 1)})
	}
	if len(p.Seen) != maxRememberedEvents {
		t.Errorf("remembered %d event ids, want %d", len(p.Seen), maxRememberedEvents)
	}
}

// TestTimestampOrderedEventsAreConfirmedWithTheProvider delivers a
// "succeeded" event whose order is only a timestamp (Stripe's), and a
// disagreeing one of the same second: the order asks the provider, whose
// record wins.
func TestTimestampOrderedEventsAreConfirmedWithTheProvider(t *testing.T) {
	fakes := newFakeProviders()
	fakes.chargeStatus = providers.ChargeFailed
	env := newOrderEnv(fakes)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalPaymentEvent, action.PaymentEvent{EventID: "evt_1", ChargeID: "ch_1", Status: "succeeded", Version: 1700000000})
		env.SignalWorkflow(SignalPaymentEvent, action.PaymentEvent{EventID: "evt_2", ChargeID: "ch_1", Status: "failed", Version: 1700000000})
	}, time.Second)
	env.ExecuteWorkflow(OrderWorkflow, OrderInput{Order: testOrder(), PaymentTimeout: time.Hour, PaymentWebhookWait: time.Hour})
	var result OrderResult
	if err := env.GetWorkflowResult(&result); err != nil {
		t.Fatal(err)
	}
	if result.State.Status != action.StatusRejected {
		t.Errorf("status = %s, want rejected: the provider's record says failed", result.State.Status)
	}
	if got := fakes.count("get_charge"); got < 1 {
		t.Errorf("get_charge calls = %d, want the provider asked", got)
	}
}

// TestPaymentWebhookDecidesWithoutAskingTheProvider delivers the outcome by
// signal before the wait ends: the provider is never asked.
func TestPaymentWebhookDecidesWithoutAskingTheProvider(t *testing.T) {
	fakes := newFakeProviders()
	env := newOrderEnv(fakes)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalPaymentEvent, action.PaymentEvent{EventID: "e1", ChargeID: "ch_1", Status: "succeeded", Version: 2, Ordered: true})
		env.SignalWorkflow(SignalPaymentEvent, action.PaymentEvent{EventID: "e1", ChargeID: "ch_1", Status: "succeeded", Version: 2, Ordered: true})
	}, time.Second)
	env.ExecuteWorkflow(OrderWorkflow, OrderInput{Order: testOrder(), PaymentTimeout: time.Hour, PaymentWebhookWait: time.Hour})
	var result OrderResult
	if err := env.GetWorkflowResult(&result); err != nil {
		t.Fatal(err)
	}
	if result.State.Status != action.StatusCompleted || fakes.count("get_charge") != 0 {
		t.Errorf("status = %s with %d charge reads, want completed with none", result.State.Status, fakes.count("get_charge"))
	}
}

// TestAnOrderSaysItAwaitsPaymentOnlyWhenItWaitsForLong: an order of the
// current revision whose payment webhook came while its charge step ran
// goes on with no timer, no change of status and no state kept; one whose
// webhook comes within the grace waits as processing, keeping nothing; one
// whose webhook comes later says that it awaits payment, its state kept for
// reads. None records a GetVersion marker.
func TestAnOrderSaysItAwaitsPaymentOnlyWhenItWaitsForLong(t *testing.T) {
	tests := []struct {
		name string
		// after is when the webhook comes after the order starts; zero:
		// while the charge is made.
		after    time.Duration
		statuses []string
		timers   int
		kept     []action.Status
	}{
		{"webhook during the charge step", 0, []string{"completed"}, 0, nil},
		{"webhook within the grace", time.Second, []string{"completed"}, 1, nil},
		{"webhook after the grace", 10 * time.Second, []string{"awaiting_payment", "processing", "completed"}, 2,
			[]action.Status{action.StatusAwaitingPayment, action.StatusProcessing}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fakes := newFakeProviders()
			env := newOrderEnv(fakes)
			paid := action.PaymentEvent{EventID: "e2", ChargeID: "ch_1", Status: "succeeded", Version: 2, Ordered: true}
			if tt.after == 0 {
				env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
					if info.ActivityType.Name == "CreateCharge" {
						env.SignalWorkflow(SignalPaymentEvent, paid)
					}
				})
			} else {
				env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalPaymentEvent, paid) }, tt.after)
			}
			var statuses []string
			env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
				if v, ok := args.Get(0).(temporal.SearchAttributes).GetKeyword(SearchStatus); ok {
					statuses = append(statuses, v)
				}
			}).Return(nil)
			var kept []action.Status
			env.OnUpsertMemo(mock.Anything).Run(func(args mock.Arguments) {
				if st, ok := args.Get(0).(map[string]any)[MemoState].(OrderState); ok {
					kept = append(kept, st.Status)
				}
			}).Return(nil)
			timers := 0
			env.SetOnTimerScheduledListener(func(string, time.Duration) { timers++ })
			env.OnGetVersion(mock.Anything, workflow.DefaultVersion, 1).Run(func(args mock.Arguments) {
				t.Errorf("GetVersion(%v) called by an order of revision %d", args.Get(0), OrderRevision)
			}).Return(workflow.Version(1))
			env.ExecuteWorkflow(OrderWorkflow, OrderInput{Order: testOrder(), PaymentTimeout: time.Hour, PaymentWebhookWait: time.Hour,
				Revision: OrderRevision})
			var result OrderResult
			if err := env.GetWorkflowResult(&result); err != nil {
				t.Fatal(err)
			}
			if result.State.Status != action.StatusCompleted || fakes.count("get_charge") != 0 {
				t.Fatalf("status = %s with %d charge reads, want completed with none", result.State.Status, fakes.count("get_charge"))
			}
			if fmt.Sprint(statuses) != fmt.Sprint(tt.statuses) || timers != tt.timers || fmt.Sprint(kept) != fmt.Sprint(tt.kept) {
				t.Errorf("statuses %v, %d timers, states kept %v; want %v, %d, %v", statuses, timers, kept, tt.statuses, tt.timers, tt.kept)
			}
		})
	}
}
