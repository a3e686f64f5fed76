package webhooks

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The fuzz targets check that verifiers and decoders never panic, accept
// nothing they should not, and fail only with their documented errors.
// Seed corpora live in testdata/fuzz; run one with
// go test ./webhooks -fuzz FuzzVerifyStandard -fuzztime 30s.

func FuzzVerifyStandard(f *testing.F) {
	f.Add(vectorID, strconv.Itoa(vectorTimestamp), vectorSignature, []byte(vectorBody))
	f.Add("", "", "", []byte{})
	f.Add(vectorID, "not-a-number", "v1,????", []byte("{}"))
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set(HeaderID, id)
		h.Set(HeaderTimestamp, ts)
		h.Set(HeaderSignature, sig)
		got, err := VerifyStandard([]string{vectorSecret}, h, body, time.Unix(vectorTimestamp, 0))
		if err == nil {
			// Only a real signature of this exact message may pass.
			want, _ := SignStandard(vectorSecret, id, mustInt(t, ts), body)
			if got != id || !containsField(sig, want) {
				t.Fatalf("accepted id=%q ts=%q sig=%q", id, ts, sig)
			}
			return
		}
		if !errors.Is(err, ErrNoSignature) && !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrStale) {
			t.Fatalf("unexpected error %v", err)
		}
	})
}

func FuzzVerifyStripe(f *testing.F) {
	const secret = "whsec_fuzz"
	body := []byte(`{"id":"evt_1"}`)
	f.Add(SignStripe(secret, 1700000000, body), body)
	f.Add("t=,v1=", []byte{})
	f.Add("t=1700000000,v1=zz,v1=00", []byte("x"))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		h := http.Header{}
		h.Set(HeaderStripeSignature, header)
		err := VerifyStripe([]string{secret}, h, body, time.Unix(1700000000, 0))
		if err != nil && !errors.Is(err, ErrNoSignature) && !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrStale) {
			t.Fatalf("unexpected error %v", err)
		}
	})
}

func FuzzDecodeStandard(f *testing.F) {
	f.Add("msg_1", []byte(`{"type":"payment.succeeded","timestamp":"2026-11-28T10:00:00Z","data":{"charge_id":"ch_1","external_ref":"order/A-1/charge","version":2}}`))
	f.Add("msg_2", []byte(`{"type":"payment.failed"}`))
	f.Add("", []byte(`null`))
	f.Fuzz(func(t *testing.T, id string, body []byte) {
		e, err := DecodeStandard(id, body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnhandled) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if e.OrderID == "" || e.ChargeID == "" || e.Version < 1 || e.EventID != id {
			t.Fatalf("accepted an incomplete event %+v", e)
		}
	})
}

func FuzzDecodeStripe(f *testing.F) {
	f.Add([]byte(`{"id":"evt_1","type":"payment_intent.succeeded","created":1700000000,"data":{"object":{"id":"pi_1","metadata":{"handoff_external_ref":"order/A-1/charge"}}}}`))
	f.Add([]byte(`{"id":"evt_1","type":"charge.refunded","created":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := DecodeStripe(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnhandled) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if e.OrderID == "" || e.ChargeID == "" || e.EventID == "" {
			t.Fatalf("accepted an incomplete event %+v", e)
		}
	})
}

func mustInt(t *testing.T, s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("accepted a non-numeric timestamp %q", s)
	}
	return n
}

func containsField(fields, want string) bool {
	for _, f := range strings.Fields(fields) {
		if f == want {
			return true
		}
	}
	return false
}
