package activities

import (
	"context"
	"testing"

	"go.temporal.io/sdk/testsuite"

	"github.com/handoff-hq/handoff/providers"
)

// mailbox is a Mailer that keeps what it is asked to send.
type mailbox struct{ sent []providers.MessageRequest }

func (m *mailbox) SendMessage(_ context.Context, call providers.Call, req providers.MessageRequest) (providers.Message, error) {
	m.sent = append(m.sent, req)
	return providers.Message{ID: "msg_1", ExternalRef: call.IdempotencyKey}, nil
}

func (m *mailbox) FindMessage(context.Context, providers.Call, string) (providers.Message, bool, error) {
	return providers.Message{}, false, nil
}

// TestSendEmailWritesTheConfirmation proves the activity writes the
// confirmation from the facts the workflow passes, and sends a message an
// earlier release wrote in full as it was written.
func TestSendEmailWritesTheConfirmation(t *testing.T) {
	call := providers.Call{IdempotencyKey: "order/A-1/confirmation"}
	for _, tc := range []struct {
		name          string
		in            SendEmailInput
		subject, text string
	}{
		{"an order's confirmation",
			SendEmailInput{Call: call, To: "ada@example.com", Confirmation: &Confirmation{
				OrderID: "A-1", Name: "Ada Lovelace", Amount: 4999, Currency: "eur", InvoiceID: "in_7"}},
			"Your order A-1",
			"Hello Ada Lovelace,\n\nthank you for your order A-1. We received your payment of 49.99 eur.\nYour invoice: in_7.\n"},
		{"a reconciliation's repair, which knows no name",
			SendEmailInput{Call: call, To: "ada@example.com", Confirmation: &Confirmation{OrderID: "order/A-1", Amount: 1205, Currency: "usd"}},
			"Your order order/A-1",
			"Thank you for your order. We received your payment of 12.05 usd.\n"},
		{"a message written by an earlier release",
			SendEmailInput{Call: call, To: "ada@example.com", Subject: "Your order A-1", Text: "Hello Ada,\n"},
			"Your order A-1", "Hello Ada,\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			box := &mailbox{}
			var env testsuite.WorkflowTestSuite
			aenv := env.NewTestActivityEnvironment()
			aenv.RegisterActivity(&Activities{Mailer: box})
			if _, err := aenv.ExecuteActivity((&Activities{}).SendEmail, tc.in); err != nil {
				t.Fatal(err)
			}
			if len(box.sent) != 1 {
				t.Fatalf("sent %d messages, want 1", len(box.sent))
			}
			got := box.sent[0]
			if got.To != "ada@example.com" || got.Subject != tc.subject || got.Text != tc.text {
				t.Errorf("sent %+v, want subject %q and text %q", got, tc.subject, tc.text)
			}
		})
	}
}
