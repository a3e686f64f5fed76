package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/handoff-hq/handoff/contracts"
	"github.com/handoff-hq/handoff/contracts/conformance"
	"github.com/handoff-hq/handoff/providers"
)

// The sandbox adapter keeps every sandbox contract, against the sandbox
// itself behind OAuth2 client credentials, as handoff runs it.
func TestTheSandboxAdapterKeepsItsContracts(t *testing.T) {
	server := NewServer(Options{SettleDelay: 10 * time.Millisecond, ClientID: "conformance", ClientSecret: "conformance-secret-0123456789"})
	peer := &conformance.HTTPPeer{Next: server, Exempt: func(r *http.Request) bool { return r.URL.Path == "/oauth/token" }}
	srv := httptest.NewServer(peer)
	t.Cleanup(srv.Close)
	var n atomic.Int64
	unique := func() string { return fmt.Sprintf("%d-%d", time.Now().UnixNano(), n.Add(1)) }
	// Every answer the sandbox gives is as its contract declares it.
	reg := prometheus.NewRegistry()
	metrics := providers.NewMetrics(reg)
	defer func() {
		if drifts := driftCounts(t, reg); len(drifts) > 0 {
			t.Errorf("answers of the sandbox drifted from its contracts: %v", drifts)
		}
	}()

	client := func(t *testing.T, system string) (*Client, contracts.Contract) {
		c, ok := contracts.For(system, "sandbox")
		if !ok {
			t.Fatalf("no sandbox contract for %s", system)
		}
		cl := NewClient(system, srv.URL+"/"+system, providers.HTTPOptions{Timeout: 10 * time.Second, Contract: &c, Metrics: metrics})
		cl.HTTP().SetAuth(providers.NewClientCredentials(system, srv.URL+"/oauth/token", "conformance", "conformance-secret-0123456789", cl.HTTP().Transport(), 0))
		return cl, c
	}
	call := func() providers.Call {
		return providers.Call{IdempotencyKey: "order/" + unique() + "/step", CorrelationID: "conformance"}
	}

	t.Run("payments", func(t *testing.T) {
		cl, c := client(t, "payments")
		var chargeID string
		newCharge := func(ctx context.Context, key string, settled bool) (string, error) {
			ch, err := cl.CreateCharge(ctx, providers.Call{IdempotencyKey: key}, providers.ChargeRequest{Amount: 2500, Currency: "eur", Email: "ada@example.com"})
			if err != nil || !settled {
				return ch.ID, err
			}
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				if got, err := cl.GetCharge(ctx, providers.Call{}, ch.ID); err == nil && got.Status == providers.ChargeSucceeded {
					return ch.ID, nil
				}
			}
			return "", fmt.Errorf("charge %s did not settle", ch.ID)
		}
		prepareCharge := func(settled bool) func(context.Context) error {
			return func(ctx context.Context) (err error) {
				chargeID, err = newCharge(ctx, "order/"+unique()+"/charge", settled)
				return err
			}
		}
		conformance.Run(t, conformance.Suite{Contract: c, Peer: peer, Unique: unique,
			Operations: map[string]conformance.Operation{
				"create_charge": {Do: func(ctx context.Context, f map[string]any) error {
					var req providers.ChargeRequest
					if err := decode(f, &req); err != nil {
						return err
					}
					_, err := cl.CreateCharge(ctx, call(), req)
					return err
				}},
				"get_charge": {Prepare: prepareCharge(false), Do: func(ctx context.Context, _ map[string]any) error {
					_, err := cl.GetCharge(ctx, call(), chargeID)
					return err
				}},
				"find_charge": {Do: func(ctx context.Context, _ map[string]any) error {
					_, _, err := cl.FindCharge(ctx, call(), "order/x/charge")
					return err
				}},
				"cancel_charge": {Prepare: prepareCharge(false), Do: func(ctx context.Context, _ map[string]any) error {
					_, err := cl.CancelCharge(ctx, call(), chargeID)
					return err
				}},
				"create_refund": {Prepare: prepareCharge(true), Do: func(ctx context.Context, f map[string]any) error {
					var req providers.RefundRequest
					if err := decode(f, &req); err != nil {
						return err
					}
					if req.Charge != "" {
						req.Charge = chargeID // the example's id stands for a real charge
					}
					_, err := cl.RefundCharge(ctx, call(), req)
					return err
				}},
				"find_refund": {Do: func(ctx context.Context, _ map[string]any) error {
					_, _, err := cl.FindRefund(ctx, call(), "ch_unknown")
					return err
				}},
				"list_charges": {Do: func(ctx context.Context, _ map[string]any) error {
					_, _, err := cl.ListCharges(ctx, call(), providers.Page{Limit: 10})
					return err
				}},
				"find_charges": {Do: func(ctx context.Context, _ map[string]any) error {
					_, err := cl.FindChargesByRefs(ctx, call(), []string{"order/x/charge", "order/y/charge"})
					return err
				}},
			},
			Lookups: map[string]conformance.Lookup{
				"charge": {
					Create: func(ctx context.Context, ref string) (string, error) {
						_, err := newCharge(ctx, ref, false)
						return ref, err
					},
					Find: func(ctx context.Context, ref string) (bool, error) {
						_, found, err := cl.FindCharge(ctx, call(), ref)
						return found, err
					},
				},
				"refund": {
					Create: func(ctx context.Context, ref string) (string, error) {
						id, err := newCharge(ctx, ref, true)
						if err != nil {
							return "", err
						}
						_, err = cl.RefundCharge(ctx, providers.Call{IdempotencyKey: ref + "/refund"}, providers.RefundRequest{Charge: id})
						return id, err
					},
					Find: func(ctx context.Context, chargeID string) (bool, error) {
						_, found, err := cl.FindRefund(ctx, call(), chargeID)
						return found, err
					},
				},
			},
		})
	})

	t.Run("accounting", func(t *testing.T) {
		cl, c := client(t, "accounting")
		var invoiceID string
		newInvoice := func(ctx context.Context, key string) (string, error) {
			inv, err := cl.CreateInvoice(ctx, providers.Call{IdempotencyKey: key}, providers.InvoiceRequest{Amount: 2500, Currency: "eur", Charge: "ch_1",
				Lines: []providers.InvoiceLine{{SKU: "book", Quantity: 1, UnitAmount: 2500}}})
			return inv.ID, err
		}
		conformance.Run(t, conformance.Suite{Contract: c, Peer: peer, Unique: unique,
			Operations: with(map[string]conformance.Operation{
				"create_invoice": {Do: func(ctx context.Context, f map[string]any) error {
					var req providers.InvoiceRequest
					if err := decode(f, &req); err != nil {
						return err
					}
					_, err := cl.CreateInvoice(ctx, call(), req)
					return err
				}},
				"find_invoice": {Do: func(ctx context.Context, _ map[string]any) error {
					_, _, err := cl.FindInvoice(ctx, call(), "order/x/invoice")
					return err
				}},
				"void_invoice": {
					Prepare: func(ctx context.Context) (err error) {
						invoiceID, err = newInvoice(ctx, "order/"+unique()+"/invoice")
						return err
					},
					Do: func(ctx context.Context, _ map[string]any) error {
						_, err := cl.VoidInvoice(ctx, call(), invoiceID)
						return err
					},
				},
				"list_invoices": {Do: func(ctx context.Context, _ map[string]any) error {
					_, _, err := cl.ListInvoices(ctx, call(), providers.Page{Limit: 10})
					return err
				}},
				"find_invoices": {Do: func(ctx context.Context, _ map[string]any) error {
					_, err := cl.FindInvoicesByRefs(ctx, call(), []string{"order/x/invoice"})
					return err
				}},
			}, customerOperations(cl, call, unique)),
			Lookups: map[string]conformance.Lookup{
				"customer": customerLookup(cl, call),
				"invoice": {
					Create: func(ctx context.Context, ref string) (string, error) {
						_, err := newInvoice(ctx, ref)
						return ref, err
					},
					Find: func(ctx context.Context, ref string) (bool, error) {
						_, found, err := cl.FindInvoice(ctx, call(), ref)
						return found, err
					},
				},
			},
		})
	})

	t.Run("crm", func(t *testing.T) {
		cl, c := client(t, "crm")
		ops := customerOperations(cl, call, unique)
		delete(ops, "upsert_contact") // driven as the order's upsert below
		conformance.Run(t, conformance.Suite{Contract: c, Peer: peer, Unique: unique,
			Operations: with(ops, map[string]conformance.Operation{
				"upsert_contact": {Do: func(ctx context.Context, f map[string]any) error {
					var req providers.ContactRequest
					if err := decode(f, &req); err != nil {
						return err
					}
					_, err := cl.UpsertContact(ctx, call(), req)
					return err
				}},
				"find_contacts": {Do: func(ctx context.Context, _ map[string]any) error {
					_, err := cl.FindContactsByIDs(ctx, call(), []string{"ct_unknown"})
					return err
				}},
			}),
			Lookups: map[string]conformance.Lookup{
				"customer": customerLookup(cl, call),
				"contact": {
					Create: func(ctx context.Context, ref string) (string, error) {
						email := strings.NewReplacer("/", "-").Replace(ref) + "@example.com"
						ct, err := cl.UpsertContact(ctx, call(), providers.ContactRequest{Email: email, Name: "Ada"})
						return ct.ID, err
					},
					Find: func(ctx context.Context, id string) (bool, error) {
						found, err := cl.FindContactsByIDs(ctx, call(), []string{id})
						return len(found) > 0, err
					},
				},
			},
		})
	})

	t.Run("mail", func(t *testing.T) {
		cl, c := client(t, "mail")
		conformance.Run(t, conformance.Suite{Contract: c, Peer: peer, Unique: unique,
			Operations: map[string]conformance.Operation{
				"send_message": {Do: func(ctx context.Context, f map[string]any) error {
					var req providers.MessageRequest
					if err := decode(f, &req); err != nil {
						return err
					}
					_, err := cl.SendMessage(ctx, call(), req)
					return err
				}},
				"find_message": {Do: func(ctx context.Context, _ map[string]any) error {
					_, _, err := cl.FindMessage(ctx, call(), "order/x/confirmation")
					return err
				}},
				"find_messages": {Do: func(ctx context.Context, _ map[string]any) error {
					_, err := cl.FindMessagesByRefs(ctx, call(), []string{"order/x/confirmation"})
					return err
				}},
			},
			Lookups: map[string]conformance.Lookup{
				"message": {
					Create: func(ctx context.Context, ref string) (string, error) {
						_, err := cl.SendMessage(ctx, providers.Call{IdempotencyKey: ref}, providers.MessageRequest{To: "ada@example.com", Subject: "Your order"})
						return ref, err
					},
					Find: func(ctx context.Context, ref string) (bool, error) {
						_, found, err := cl.FindMessage(ctx, call(), ref)
						return found, err
					},
				},
			},
		})
	})
}

// with adds more operations to ops.
func with(ops, more map[string]conformance.Operation) map[string]conformance.Operation {
	maps.Copy(ops, more)
	return ops
}

// customerOperations drive the customer record operations of a system
// (its contacts, its customers), named as its contract names them.
func customerOperations(cl *Client, call func() providers.Call, unique func() string) map[string]conformance.Operation {
	api := customerAPIs[cl.system]
	var id string
	prepare := func(ctx context.Context) error {
		r, err := cl.CreateCustomer(ctx, call(), providers.CustomerWrite{Fields: map[string]string{"email": unique() + "@example.com", "name": "Ada"}})
		id = r.ID
		return err
	}
	strs := func(f map[string]any) (map[string]string, string) {
		out := map[string]string{}
		for k, v := range f {
			out[k], _ = v.(string)
		}
		ref := out["external_ref"]
		delete(out, "external_ref")
		return out, ref
	}
	return map[string]conformance.Operation{
		api.create: {Do: func(ctx context.Context, f map[string]any) error {
			fields, ref := strs(f)
			_, err := cl.CreateCustomer(ctx, call(), providers.CustomerWrite{Fields: fields, ExternalRef: ref})
			return err
		}},
		api.update: {Prepare: prepare, Do: func(ctx context.Context, f map[string]any) error {
			fields, ref := strs(f)
			_, err := cl.UpdateCustomer(ctx, call(), id, providers.CustomerWrite{Fields: fields, ExternalRef: ref, IfVersion: 1})
			return err
		}},
		api.get: {Prepare: prepare, Do: func(ctx context.Context, _ map[string]any) error {
			_, err := cl.GetCustomer(ctx, call(), id)
			return err
		}},
		api.find: {Do: func(ctx context.Context, _ map[string]any) error {
			_, err := cl.FindCustomers(ctx, call(), providers.CustomerQuery{Email: "nobody@example.com"})
			return err
		}},
		api.list: {Do: func(ctx context.Context, _ map[string]any) error {
			_, _, err := cl.ListCustomers(ctx, call(), providers.Page{Limit: 10})
			return err
		}},
	}
}

// customerLookup finds customer records by the reference handoff stores.
func customerLookup(cl *Client, call func() providers.Call) conformance.Lookup {
	return conformance.Lookup{
		Create: func(ctx context.Context, ref string) (string, error) {
			email := strings.NewReplacer("/", "-").Replace(ref) + "@example.com"
			_, err := cl.CreateCustomer(ctx, providers.Call{IdempotencyKey: ref}, providers.CustomerWrite{Fields: map[string]string{"email": email}, ExternalRef: ref})
			return ref, err
		},
		Find: func(ctx context.Context, ref string) (bool, error) {
			found, err := cl.FindCustomers(ctx, call(), providers.CustomerQuery{ExternalRef: ref})
			return len(found) > 0, err
		},
	}
}

// decode fills a typed request from a contract's fields.
func decode(fields map[string]any, out any) error {
	b, err := json.Marshal(fields)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// driftCounts reads handoff_contract_drift_total: its count by
// "system operation kind".
func driftCounts(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "handoff_contract_drift_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			out[labels["system"]+" "+labels["operation"]+" "+labels["kind"]] += m.GetCounter().GetValue()
		}
	}
	return out
}
