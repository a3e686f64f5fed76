package tests

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/config"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/providers/smtp"
	"github.com/handoff-hq/handoff/providers/smtp/smtptest"
	"github.com/handoff-hq/handoff/workflows"
)

// TestAConfirmationOverSMTPArrivesExactlyOnce runs orders with
// HANDOFF_MAIL_PROVIDER=smtp against a real SMTP server, through a proxy
// that cuts the first delivery attempt: where the cut falls decides whether
// handoff sends again by itself or asks an operator, and either way the
// confirmation arrives exactly once.
func TestAConfirmationOverSMTPArrivesExactlyOnce(t *testing.T) {
	selfContained(t)
	server := smtptest.Start(t)
	proxy := smtptest.NewProxy(t, server.Addr())
	const from = "shop@example.com"
	e := newIsolatedEnv(t, "smtp", func(cfg *config.Config) {
		p, _ := cfg.Provider("mail")
		p.Provider, p.URL, p.From, p.StartTLS = smtp.Kind, "smtp://"+proxy.Addr, from, smtp.TLSOff
		cfg.SetProvider("mail", p)
	})
	ctx := context.Background()
	// arrived waits for the first copy, then long enough for a second
	// attempt's copy to have arrived too.
	arrived := func(id string) int {
		messageID := smtp.MessageID(action.OrderKey(id).Step(action.OrderStepConfirmation).String(), from)
		server.CountWithin(t, messageID, 1)
		time.Sleep(2 * time.Second)
		return server.Count(t, messageID)
	}
	await := func(id string, want action.Status) workflows.OrderState {
		t.Helper()
		var state workflows.OrderState
		waitFor(t, id+" to be "+string(want), func() bool {
			r, err := e.control.Order(ctx, id)
			state = r.State
			return err == nil && state.Status == want
		})
		return state
	}
	place := func(id string) {
		t.Helper()
		if _, err := e.control.PlaceOrder(ctx, order(id), "smtp-test"); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("cut before the message is handed over: sent again by itself", func(t *testing.T) {
		proxy.CutNext(smtptest.CutAtRecipient, 1)
		place("smtp-early")
		state := await("smtp-early", action.StatusCompleted)
		if got := arrived("smtp-early"); got != 1 || proxy.Cuts() != 1 {
			t.Errorf("%d confirmations arrived after %d cuts, want exactly 1 after 1", got, proxy.Cuts())
		}
		if s := step(state, action.OrderStepConfirmation); s.Attempts < 2 {
			t.Errorf("confirmation step %+v, want a second attempt", s)
		}
	})

	t.Run("cut after the message is handed over: parked, then skipped by an operator", func(t *testing.T) {
		cuts := proxy.Cuts()
		proxy.CutNext(smtptest.CutAfterEnd, 1)
		place("smtp-late")
		state := await("smtp-late", action.StatusNeedsAttention)
		s := step(state, action.OrderStepConfirmation)
		if s.LastError == nil || s.LastError.Category != action.CategoryAmbiguous || s.Attempts != 1 {
			t.Fatalf("confirmation step %+v, want parked as ambiguous after one attempt", s)
		}
		if got := arrived("smtp-late"); got != 1 || proxy.Cuts() != cuts+1 {
			t.Fatalf("%d confirmations arrived, want 1: the server took it before the cut", got)
		}
		// The operator finds the Message-ID in the mailbox and skips.
		if _, err := e.control.Resolve(ctx, action.OrderKey("smtp-late").String(), workflows.UpdateSkip,
			workflows.OperatorRequest{Reason: "found " + smtp.MessageID(action.OrderKey("smtp-late").Step(action.OrderStepConfirmation).String(), from) + " in the mailbox"}); err != nil {
			t.Fatal(err)
		}
		await("smtp-late", action.StatusCompleted)
		if got := arrived("smtp-late"); got != 1 {
			t.Errorf("%d confirmations arrived after the operator's answer, want exactly 1", got)
		}
	})

	t.Run("reconciliation runs and says the confirmations are not compared", func(t *testing.T) {
		id, err := e.control.StartReconciliation(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var report workflows.ReconcileReport
		waitFor(t, "the reconciliation", func() bool {
			report, err = e.control.Reconciliation(ctx, id)
			return !errors.Is(err, control.ErrRunning)
		})
		if err != nil {
			t.Fatalf("reconciliation %s: %v", id, err)
		}
		if report.Compared.Charges < 2 || len(report.NotCompared) != 1 || report.Differences["email_missing"] != 0 {
			t.Errorf("report %+v: want both orders' charges compared, the confirmations named as not compared, and no e-mail difference", report)
		}
	})
}

func step(state workflows.OrderState, name string) workflows.Step {
	for _, s := range state.Steps {
		if s.Name == name {
			return s
		}
	}
	return workflows.Step{}
}
