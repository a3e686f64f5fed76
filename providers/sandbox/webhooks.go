package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/handoff-hq/handoff/providers"
	"github.com/handoff-hq/handoff/webhooks"
)

// Webhook fault modes: they change how the sandbox delivers its events.
const (
	// FaultDuplicateWebhooks delivers each affected event twice, at once.
	FaultDuplicateWebhooks = "duplicate_webhooks"
	// FaultReorderWebhooks holds each affected event back LatencyMS
	// (default 500 ms), so that the events after it overtake it.
	FaultReorderWebhooks = "reorder_webhooks"
	// FaultDelayWebhooks delays each affected event by LatencyMS.
	FaultDelayWebhooks = "delay_webhooks"
)

// webhookOperation is the operation name webhook faults match.
const webhookOperation = "deliver_webhook"

// Delivery retry schedule: the sandbox retries a non-2xx answer as real
// providers do, with backoff, for about four minutes.
const (
	deliveryAttempts   = 12
	deliveryFirstRetry = 500 * time.Millisecond
	deliveryMaxRetry   = 30 * time.Second
)

// Delivery is one event the sandbox sent, as GET /_sandbox/webhooks lists it.
type Delivery struct {
	EventID  string `json:"event_id"`
	Type     string `json:"type"`
	Ref      string `json:"external_ref"`
	Attempts int    `json:"attempts"`
	// Status is the last HTTP status, 0 when no answer came.
	Status    int    `json:"status"`
	Delivered bool   `json:"delivered"`
	Fault     string `json:"fault,omitempty"`
}

// sender signs and delivers the sandbox's events to handoff.
type sender struct {
	url string // base URL; events go to url + "/" + system
	// secrets sign each system's events, by system.
	secrets map[string]string
	// delay is how long every event waits before it is sent.
	delay time.Duration
	http  *http.Client
	log   *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	seq        int
	instance   string
	deliveries []*Delivery
}

// newSender signs the payments events with secret, and every other
// system's with its entry in secrets.
func newSender(url, secret string, secrets map[string]string, instance string, delay time.Duration, log *slog.Logger) *sender {
	ctx, cancel := context.WithCancel(context.Background())
	all := map[string]string{}
	for k, v := range secrets {
		all[k] = v
	}
	if secret != "" {
		all["payments"] = secret
	}
	return &sender{url: url, secrets: all, instance: instance, delay: delay, log: log, ctx: ctx, cancel: cancel,
		http: &http.Client{Timeout: 10 * time.Second}}
}

// enabledFor reports whether the system's events are sent.
func (s *sender) enabledFor(system string) bool {
	return s != nil && s.url != "" && s.secrets[system] != ""
}

// paymentEvent is the body of a payment event.
type paymentEvent struct {
	Type      string           `json:"type"`
	Timestamp string           `json:"timestamp"`
	Data      paymentEventData `json:"data"`
}

type paymentEventData struct {
	ChargeID       string `json:"charge_id"`
	ExternalRef    string `json:"external_ref"`
	Status         string `json:"status"`
	Amount         int64  `json:"amount"`
	Currency       string `json:"currency"`
	Version        int64  `json:"version"`
	FailureCode    string `json:"failure_code,omitempty"`
	FailureMessage string `json:"failure_message,omitempty"`
}

// chargeEvent sends the event for a charge's current state; the caller
// holds the server's lock, so the charge does not change underneath.
func (srv *Server) chargeEvent(ch *providers.Charge, version int64) {
	if !srv.webhooks.enabledFor("payments") {
		return
	}
	e := paymentEvent{
		Type:      "payment." + ch.Status,
		Timestamp: time.Now().UTC().Format(time.RFC3339Nano),
		Data: paymentEventData{ChargeID: ch.ID, ExternalRef: ch.ExternalRef, Status: ch.Status, Amount: ch.Amount,
			Currency: ch.Currency, Version: version, FailureCode: ch.FailureCode, FailureMessage: ch.FailureMessage},
	}
	srv.webhooks.send("payments", ch.ExternalRef, e.Type, e, srv.faults.takeAll("payments", webhookOperation, ch.ExternalRef))
}

// send delivers one event in the background, applying webhook faults.
func (s *sender) send(system, ref, typ string, e any, faults []*Fault) {
	if pe, ok := e.(partyEvent); ok {
		pe.Timestamp = time.Now().UTC().Format(time.RFC3339Nano)
		e = pe
	}
	body, err := json.Marshal(e)
	if err != nil {
		s.log.Error("encode sandbox webhook", "error", err)
		return
	}
	s.mu.Lock()
	s.seq++
	id := fmt.Sprintf("msg_%s_%08d", s.instance, s.seq)
	copies := 1
	delay := s.delay
	d := &Delivery{EventID: id, Type: typ, Ref: ref}
	for _, f := range faults {
		d.Fault = strings.TrimPrefix(d.Fault+","+f.Mode, ",")
		switch f.Mode {
		case FaultDuplicateWebhooks:
			copies = 2
		case FaultReorderWebhooks:
			delay += time.Duration(max(f.LatencyMS, 500)) * time.Millisecond
		case FaultDelayWebhooks:
			delay += time.Duration(f.LatencyMS) * time.Millisecond
		}
	}
	s.deliveries = append(s.deliveries, d)
	s.mu.Unlock()
	for range copies {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if !s.sleep(delay) {
				return
			}
			s.deliver(system, id, body, d)
		}()
	}
}

// deliver posts the event until handoff answers 2xx, retrying with backoff.
func (s *sender) deliver(system, id string, body []byte, d *Delivery) {
	wait := deliveryFirstRetry
	for attempt := 1; attempt <= deliveryAttempts; attempt++ {
		status := s.post(system, id, body)
		s.mu.Lock()
		d.Attempts++
		d.Status = status
		if status >= 200 && status < 300 {
			d.Delivered = true
		}
		s.mu.Unlock()
		if status >= 200 && status < 300 {
			return
		}
		if !s.sleep(wait) {
			return
		}
		wait = min(wait*2, deliveryMaxRetry)
	}
	s.log.Warn("sandbox webhook not delivered", "event_id", id, "attempts", deliveryAttempts)
}

// post sends one signed attempt; the signature is made afresh each time, as
// the timestamp it covers is the attempt's.
func (s *sender) post(system, id string, body []byte) int {
	ts := time.Now().Unix()
	sig, err := webhooks.SignStandard(s.secrets[system], id, ts, body)
	if err != nil {
		s.log.Error("sign sandbox webhook", "error", err)
		return 0
	}
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, s.url+"/"+system, bytes.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(webhooks.HeaderID, id)
	req.Header.Set(webhooks.HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(webhooks.HeaderSignature, sig)
	resp, err := s.http.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (s *sender) sleep(d time.Duration) bool {
	if d <= 0 {
		return s.ctx.Err() == nil
	}
	select {
	case <-time.After(d):
		return true
	case <-s.ctx.Done():
		return false
	}
}

func (s *sender) close() {
	if s == nil {
		return
	}
	s.cancel()
	s.wg.Wait()
}

// Deliveries lists the events the sandbox sent, in order.
func (srv *Server) Deliveries() []Delivery {
	s := srv.webhooks
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Delivery, 0, len(s.deliveries))
	for _, d := range s.deliveries {
		out = append(out, *d)
	}
	return out
}

func (srv *Server) getDeliveries(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"deliveries": srv.Deliveries()})
}
