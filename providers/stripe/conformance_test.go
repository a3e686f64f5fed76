package stripe

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handoff-hq/handoff/contracts"
	"github.com/handoff-hq/handoff/contracts/conformance"
	"github.com/handoff-hq/handoff/providers"
	"github.com/handoff-hq/handoff/providers/stripe/stripetest"
)

// The Stripe adapter keeps its contract against stripe-mock, which checks
// every request against Stripe's OpenAPI spec, with a stage in front of it
// that keeps the PaymentIntents and refunds made so that look-ups, lists
// and searches answer as Stripe's do.
func TestTheStripeAdapterKeepsItsContract(t *testing.T) {
	contract, ok := contracts.For("payments", "stripe")
	if !ok {
		t.Fatal("no contract for payments on stripe")
	}
	stage := stripetest.NewStage(stripetest.URL(t))
	peer := &conformance.HTTPPeer{Next: stage}
	srv := httptest.NewServer(peer)
	t.Cleanup(srv.Close)
	// Every answer is read against the contract's shapes: the fields
	// handoff reads are there, of their types and values.
	var drifts strings.Builder
	c := NewClient(srv.URL, stripetest.Key, providers.HTTPOptions{Timeout: 10 * time.Second, Contract: &contract,
		Logger: slog.New(slog.NewTextHandler(&drifts, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	defer func() {
		if strings.Contains(drifts.String(), "differs from its contract") {
			t.Errorf("Stripe's answers (stripe-mock's) differ from the contract:\n%s", drifts.String())
		}
	}()

	var n atomic.Int64
	unique := func() string { return fmt.Sprintf("%d-%d", time.Now().UnixNano(), n.Add(1)) }
	call := func() providers.Call {
		return providers.Call{IdempotencyKey: "order/" + unique() + "/step", CorrelationID: "conformance"}
	}
	newIntent := func(ctx context.Context, ref string, succeeded bool) (string, error) {
		ch, err := c.CreateCharge(ctx, providers.Call{IdempotencyKey: ref}, providers.ChargeRequest{Amount: 2500, Currency: "eur"})
		if err == nil && succeeded {
			stage.Set(ch.ID, "succeeded", nil)
		}
		return ch.ID, err
	}
	var intent string
	prepare := func(succeeded bool) func(context.Context) error {
		return func(ctx context.Context) (err error) {
			intent, err = newIntent(ctx, "order/"+unique()+"/charge", succeeded)
			return err
		}
	}

	conformance.Run(t, conformance.Suite{Contract: contract, Peer: peer, Unique: unique,
		Operations: map[string]conformance.Operation{
			"create_charge": {Do: func(ctx context.Context, f map[string]any) error {
				req := providers.ChargeRequest{Currency: str(f["currency"]), Description: str(f["description"]), Email: str(f["receipt_email"])}
				if v, ok := f["amount"]; ok {
					amount, err := strconv.ParseInt(str(v), 10, 64)
					if err != nil {
						return err
					}
					req.Amount = amount
				}
				return second(c.CreateCharge(ctx, providers.Call{IdempotencyKey: str(f["metadata["+MetadataExternalRef+"]"])}, req))
			}},
			"get_charge": {Prepare: prepare(false), Do: func(ctx context.Context, _ map[string]any) error {
				return second(c.GetCharge(ctx, call(), intent))
			}},
			"find_charge": {Do: func(ctx context.Context, _ map[string]any) error {
				_, _, err := c.FindCharge(ctx, call(), "order/x/charge")
				return err
			}},
			"cancel_charge": {Prepare: prepare(false), Do: func(ctx context.Context, _ map[string]any) error {
				return second(c.CancelCharge(ctx, call(), intent))
			}},
			"create_refund": {Prepare: prepare(true), Do: func(ctx context.Context, f map[string]any) error {
				pi := str(f["payment_intent"])
				if strings.HasPrefix(pi, "pi_") {
					pi = intent // the example's id stands for a real PaymentIntent
				}
				return second(c.RefundCharge(ctx, providers.Call{IdempotencyKey: str(f["metadata["+MetadataExternalRef+"]"])}, providers.RefundRequest{Charge: pi}))
			}},
			"find_refund": {Prepare: prepare(true), Do: func(ctx context.Context, _ map[string]any) error {
				_, _, err := c.FindRefund(ctx, call(), intent)
				return err
			}},
			"list_charges": {Do: func(ctx context.Context, _ map[string]any) error {
				_, _, err := c.ListCharges(ctx, call(), providers.Page{Limit: 10, After: time.Now().Add(-time.Hour)})
				return err
			}},
			"find_charges": {Do: func(ctx context.Context, _ map[string]any) error {
				return second(c.FindChargesByRefs(ctx, call(), []string{"order/x/charge", "order/y/charge"}))
			}},
		},
		Lookups: map[string]conformance.Lookup{
			"charge": {
				Create: func(ctx context.Context, ref string) (string, error) {
					_, err := newIntent(ctx, ref, false)
					return ref, err
				},
				Find: func(ctx context.Context, ref string) (bool, error) {
					_, found, err := c.FindCharge(ctx, call(), ref)
					return found, err
				},
			},
			"refund": {
				Create: func(ctx context.Context, ref string) (string, error) {
					pi, err := newIntent(ctx, ref, true)
					if err != nil {
						return "", err
					}
					_, err = c.RefundCharge(ctx, providers.Call{IdempotencyKey: ref + "/refund"}, providers.RefundRequest{Charge: pi})
					return pi, err
				},
				Find: func(ctx context.Context, pi string) (bool, error) {
					_, found, err := c.FindRefund(ctx, call(), pi)
					return found, err
				},
			},
		},
	})
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func second[T any](_ T, err error) error { return err }
