package workflows

import (
	"hash/fnv"
	"strconv"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/activities"
	"github.com/handoff-hq/handoff/providers"
)

// SignalPaymentEvent carries a provider's payment webhook into the order's
// workflow.
const SignalPaymentEvent = "payment_event"

// maxRememberedEvents bounds the event ids an order remembers for
// de-duplication; a provider's redeliveries of one event arrive long before
// this many other events of the same order.
const maxRememberedEvents = 256

// defaultPaymentWebhookWait is how long an order waits for the payment
// webhook before it asks the provider, when its input does not say.
const defaultPaymentWebhookWait = 30 * time.Second

// paymentTracker keeps what the order knows about its charge from events:
// which event ids it applied, the newest version, and whether two events
// disagreed in a way only the provider can settle.
type paymentTracker struct {
	Seen    []string `json:"seen"`
	Version int64    `json:"version"`
	Status  string   `json:"status"`
	// ChargeID is the charge the events are about; events for another
	// charge are ignored. EventCharge is the charge of the events that came
	// before the order knew its charge.
	ChargeID       string `json:"charge_id"`
	EventCharge    string `json:"event_charge"`
	FailureCode    string `json:"failure_code"`
	FailureMessage string `json:"failure_message"`
	// Undecided is set when two events of the same version disagree.
	Undecided bool `json:"undecided"`
	// Ordered is the Ordered flag of the event that set Status.
	Ordered bool `json:"ordered"`
	Applied int  `json:"applied"`
	Ignored int  `json:"ignored"`
}

func (p *paymentTracker) seen(id string) bool {
	for _, s := range p.Seen {
		if s == id {
			return true
		}
	}
	return false
}

func (p *paymentTracker) remember(id string) {
	p.Seen = append(p.Seen, id)
	if len(p.Seen) > maxRememberedEvents {
		p.Seen = p.Seen[len(p.Seen)-maxRememberedEvents:]
	}
}

// apply takes one event into account. A repeat of an applied event, an
// event about another charge, and an event older than the newest applied
// one change nothing.
func (p *paymentTracker) apply(e action.PaymentEvent) bool {
	if e.EventID == "" || p.seen(e.EventID) || (p.ChargeID != "" && e.ChargeID != p.ChargeID) {
		p.Ignored++
		return false
	}
	p.remember(e.EventID)
	if p.ChargeID == "" && p.EventCharge == "" {
		p.EventCharge = e.ChargeID
	}
	switch {
	case e.Version < p.Version:
		p.Ignored++
		return false
	case e.Version == p.Version && e.Status != p.Status:
		p.Undecided = true
	case e.Version > p.Version:
		p.Version, p.Status, p.Undecided, p.Ordered = e.Version, e.Status, false, e.Ordered
		p.FailureCode, p.FailureMessage = e.FailureCode, e.FailureMessage
	}
	p.Applied++
	return true
}

// settled reports whether events decided the payment.
func (p *paymentTracker) settled() bool {
	return !p.Undecided && (p.Status == providers.ChargeSucceeded || p.Status == providers.ChargeFailed)
}

// outcomeFor returns the outcome events decided for the charge, in the
// provider's own order; known is false when they did not decide it.
func (p *paymentTracker) outcomeFor(charge string) (status string, known bool) {
	if p.settled() && p.Ordered && (p.ChargeID == charge || (p.ChargeID == "" && p.EventCharge == charge)) {
		return p.Status, true
	}
	return "", false
}

// maxProviderWait caps the pause between two renewed looks at the provider.
const maxProviderWait = time.Minute

// backoff is the pause before the n-th renewed look at the provider: 1 s
// doubling to a minute, jittered.
func (o *orderRun) backoff(n int) time.Duration {
	return o.jitter(min(time.Second<<min(max(n-1, 0), 6), maxProviderWait), n)
}

// jitter draws a pause from the second half of d by the workflow id and n,
// so that orders waiting together do not ask together, and the same on
// every replay.
func (o *orderRun) jitter(d time.Duration, n int) time.Duration {
	h := fnv.New32a()
	_, _ = h.Write([]byte(o.workflowID + "#" + strconv.Itoa(n))) // hash writes do not fail
	return d/2 + time.Duration(float64(d/2)*float64(h.Sum32()%1024)/1024)
}

// receivePaymentEvents applies every payment signal as it arrives, for the
// whole life of the order, so that none waits unread in the channel.
func (o *orderRun) receivePaymentEvents(ctx workflow.Context) {
	ch := workflow.GetSignalChannel(ctx, SignalPaymentEvent)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var e action.PaymentEvent
			if more := ch.Receive(ctx, &e); !more {
				return
			}
			if o.payment.apply(e) {
				o.state.UpdatedAt = workflow.Now(ctx)
			}
		}
	})
}

// awaitPaymentEvents waits for the payment webhook and asks the provider
// only when no decisive event arrived in time, or when two events disagree.
// It reports whether the charge succeeded.
func (o *orderRun) awaitPaymentEvents(ctx workflow.Context, charge string) (bool, error) {
	o.payment.ChargeID = charge
	if o.payment.EventCharge != "" && o.payment.EventCharge != charge {
		// Early events were about another charge: they say nothing of this one.
		o.payment.Version, o.payment.Status, o.payment.Undecided = 0, "", false
	}
	wait := o.in.PaymentWebhookWait
	if wait <= 0 {
		wait = defaultPaymentWebhookWait
	}
	nominal := wait // the pause without jitter, doubling while nothing happens
	deadline := workflow.Now(ctx).Add(o.in.PaymentTimeout)
	fetches := 0
	// asked is the number of events applied when the provider was last
	// asked: only a newer event makes the order ask again before its wait
	// is over (an event the provider's record has not caught up with yet
	// would otherwise make it ask at once, again and again).
	asked := -1
	news := func() bool {
		fresh := !o.hardened || o.payment.Applied > asked
		return (fresh && (o.payment.settled() || o.payment.Undecided)) || o.stopping()
	}
	for {
		o.markStep(ctx, StepPayment, func(s *Step) { s.Status = action.StepWaiting })
		decided, err := o.awaitNews(ctx, wait, news)
		if err != nil {
			return false, err
		}
		if o.stopping() {
			return false, ErrCancelled
		}
		if decided && o.payment.settled() && o.payment.Ordered {
			return o.finishPayment(ctx, o.payment.Status, o.payment.FailureCode, o.payment.FailureMessage, fetches)
		}
		// No decisive event in time, events that disagree, or an outcome
		// from events ordered only by their timestamps: the provider's
		// record is the authority.
		var got activities.GetChargeResult
		in := func() activities.GetChargeInput {
			return activities.GetChargeInput{Call: o.Call(StepPayment), ChargeID: charge}
		}
		asked = o.payment.Applied
		if err := RunStep(ctx, o.Run, StepPayment, a.GetCharge, in, &got); err != nil {
			return false, err
		}
		fetches++
		o.payment.Undecided = false
		if got.Status != providers.ChargePending {
			return o.finishPayment(ctx, got.Status, got.FailureCode, got.FailureMessage, fetches)
		}
		if !workflow.Now(ctx).Before(deadline) {
			if err := o.parkPaymentTimeout(ctx, charge, got.Status); err != nil {
				return false, err
			}
			deadline = workflow.Now(ctx).Add(o.in.PaymentTimeout)
		}
		switch {
		case !o.hardened:
			wait = min(wait*2, maxPaymentPollInterval*6)
		case o.payment.settled():
			// Events say the charge settled; the provider's record does
			// not show it yet. Its record decides, after short pauses.
			if decided {
				workflow.GetLogger(ctx).Warn("the provider's record lags its payment event", "order_id", o.in.Order.OrderID,
					"correlation_id", o.in.CorrelationID, "charge_id", charge, "event_status", o.payment.Status, "record_status", got.Status, "looks", fetches)
				workflow.GetMetricsHandler(ctx).Counter(MetricPaymentRecordLagging).Inc(1)
			}
			wait = o.backoff(fetches)
		default:
			// No news: the charge is simply pending; look again later.
			nominal = min(nominal*2, maxProviderWait)
			wait = o.jitter(nominal, fetches)
		}
	}
}

// paymentGrace is how long an order waits for its payment webhook before it
// says that it awaits payment: most payments are decided within it, and
// their orders go on without a change of status or of the state they keep
// (each a history event and a visibility write).
const paymentGrace = 2 * time.Second

// awaitNews waits up to wait for news() and reports whether it came. Orders
// of revision 1 on do not wait when the events came during the charge
// step, and wait the grace first as processing, keeping nothing (reads of
// an order that kept no state yet read its short history), before they
// say that they await payment; earlier orders say it at once.
func (o *orderRun) awaitNews(ctx workflow.Context, wait time.Duration, news func() bool) (bool, error) {
	switch {
	case o.revision < 1:
		return workflow.AwaitWithTimeout(ctx, wait, news)
	case news():
		return true, nil // no timer, no change of status
	case o.state.Status != action.StatusAwaitingPayment:
		grace := min(paymentGrace, wait)
		if decided, err := workflow.AwaitWithTimeout(ctx, grace, news); err != nil || decided {
			return decided, err
		}
		if err := o.SetStatus(ctx, action.StatusAwaitingPayment); err != nil {
			return false, err
		}
		if wait <= grace {
			return false, nil
		}
		return workflow.AwaitWithTimeout(ctx, wait-grace, news)
	default:
		return workflow.AwaitWithTimeout(ctx, wait, news)
	}
}

// MetricPaymentRecordLagging counts the looks at a charge whose record did
// not yet show what a payment event said.
const MetricPaymentRecordLagging = "handoff_payment_record_lagging"

// finishPayment records the payment's outcome: a failed charge rejects the order.
func (o *orderRun) finishPayment(ctx workflow.Context, status, code, message string, fetches int) (bool, error) {
	decidedBy := "payment events"
	if fetches > 0 {
		decidedBy = "the provider's record"
	}
	outcome := action.StepSucceeded
	if status != providers.ChargeSucceeded {
		outcome = action.StepFailed
	}
	workflow.GetLogger(ctx).Info("step finished", "action", o.key.String(), "step", StepPayment, "outcome", outcome,
		"charge_status", status, "decided_by", decidedBy, "events", o.payment.Applied, "lookups", fetches, "remote_ref", o.payment.ChargeID)
	if status == providers.ChargeSucceeded {
		o.markStep(ctx, StepPayment, func(s *Step) {
			s.Status, s.Attempts, s.RemoteRef, s.LastError = action.StepSucceeded, fetches, o.payment.ChargeID, nil
		})
		return true, o.SetStatus(ctx, action.StatusProcessing)
	}
	o.markStep(ctx, StepPayment, func(s *Step) {
		s.Status, s.Attempts, s.RemoteRef = action.StepFailed, fetches, o.payment.ChargeID
		s.LastError = &StepError{Category: action.CategoryDeclined, Message: code + ": " + message}
	})
	return false, o.SetStatus(ctx, action.StatusRejected)
}
