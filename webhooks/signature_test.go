package webhooks

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// The public Standard Webhooks test vector.
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorBody      = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func standardHeaders(id string, ts int64, sig string) http.Header {
	h := http.Header{}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(HeaderSignature, sig)
	return h
}

func TestSignStandardMatchesThePublicVector(t *testing.T) {
	got, err := SignStandard(vectorSecret, vectorID, vectorTimestamp, []byte(vectorBody))
	if err != nil {
		t.Fatal(err)
	}
	if got != vectorSignature {
		t.Errorf("SignStandard = %s, want %s", got, vectorSignature)
	}
}

func TestVerifyStandard(t *testing.T) {
	at := time.Unix(vectorTimestamp, 0)
	other := "whsec_" + "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ=="
	tests := []struct {
		name    string
		secrets []string
		header  http.Header
		body    string
		now     time.Time
		wantErr error
	}{
		{"public vector", []string{vectorSecret}, standardHeaders(vectorID, vectorTimestamp, vectorSignature), vectorBody, at, nil},
		{"second secret during rotation", []string{other, vectorSecret}, standardHeaders(vectorID, vectorTimestamp, vectorSignature), vectorBody, at, nil},
		{"several signatures, one valid", []string{vectorSecret}, standardHeaders(vectorID, vectorTimestamp, "v1,AAAA "+vectorSignature), vectorBody, at, nil},
		{"within tolerance", []string{vectorSecret}, standardHeaders(vectorID, vectorTimestamp, vectorSignature), vectorBody, at.Add(4 * time.Minute), nil},
		{"changed body", []string{vectorSecret}, standardHeaders(vectorID, vectorTimestamp, vectorSignature), `{"test": 2432232315}`, at, ErrBadSignature},
		{"changed id", []string{vectorSecret}, standardHeaders("msg_other", vectorTimestamp, vectorSignature), vectorBody, at, ErrBadSignature},
		{"wrong secret", []string{other}, standardHeaders(vectorID, vectorTimestamp, vectorSignature), vectorBody, at, ErrBadSignature},
		{"other scheme version", []string{vectorSecret}, standardHeaders(vectorID, vectorTimestamp, "v2,"+vectorSignature[3:]), vectorBody, at, ErrNoSignature},
		{"missing signature", []string{vectorSecret}, standardHeaders(vectorID, vectorTimestamp, ""), vectorBody, at, ErrNoSignature},
		{"too old", []string{vectorSecret}, standardHeaders(vectorID, vectorTimestamp, vectorSignature), vectorBody, at.Add(6 * time.Minute), ErrStale},
		{"from the future", []string{vectorSecret}, standardHeaders(vectorID, vectorTimestamp, vectorSignature), vectorBody, at.Add(-6 * time.Minute), ErrStale},
		{"no secret configured", nil, standardHeaders(vectorID, vectorTimestamp, vectorSignature), vectorBody, at, ErrNoSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := VerifyStandard(tt.secrets, tt.header, []byte(tt.body), tt.now)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("VerifyStandard error = %v, want %v", err, tt.wantErr)
			}
			if err == nil && id != tt.header.Get(HeaderID) {
				t.Errorf("id = %q, want %q", id, tt.header.Get(HeaderID))
			}
		})
	}
}

func TestVerifyStripe(t *testing.T) {
	const secret = "whsec_test_secret_for_stripe_signatures"
	body := []byte(`{"id":"evt_1","type":"payment_intent.succeeded"}`)
	now := time.Unix(1700000000, 0)
	header := func(v string) http.Header {
		h := http.Header{}
		h.Set(HeaderStripeSignature, v)
		return h
	}
	valid := SignStripe(secret, now.Unix(), body)
	tests := []struct {
		name    string
		secrets []string
		header  http.Header
		now     time.Time
		wantErr error
	}{
		{"valid", []string{secret}, header(valid), now, nil},
		{"rotation", []string{"whsec_old", secret}, header(valid), now, nil},
		{"extra v0 and v1 signatures", []string{secret}, header(valid + ",v0=abcd,v1=00ff"), now, nil},
		{"wrong secret", []string{"whsec_other"}, header(valid), now, ErrBadSignature},
		{"no v1", []string{secret}, header("t=1700000000"), now, ErrNoSignature},
		{"no timestamp", []string{secret}, header("v1=abcdef"), now, ErrNoSignature},
		{"missing", []string{secret}, http.Header{}, now, ErrNoSignature},
		{"stale", []string{secret}, header(valid), now.Add(301 * time.Second), ErrStale},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := VerifyStripe(tt.secrets, tt.header, body, tt.now); !errors.Is(err, tt.wantErr) {
				t.Errorf("VerifyStripe error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestSignStripeKnownValue pins the algorithm with a value computed
// independently (Python's hmac module): hex HMAC-SHA256 of "t.body" keyed
// with the whole secret, as Stripe's libraries compute it.
func TestSignStripeKnownValue(t *testing.T) {
	got := SignStripe("whsec_test", 1, []byte("{}"))
	want := "t=1,v1=7500d5d4be4b3ef07af1fe56f7d522d135cdaa7530de557e67cc1049c52de094"
	if got != want {
		t.Errorf("SignStripe = %s, want %s", got, want)
	}
}
