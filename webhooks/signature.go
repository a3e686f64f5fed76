// Package webhooks verifies and decodes the webhooks providers send: the
// Standard Webhooks signature scheme (the sandbox and most modern
// providers), Stripe's Stripe-Signature, and the events inside. Nothing here
// does I/O; the API's webhook endpoint calls it before anything else.
package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Verification failures. Callers tell them apart with errors.Is.
var (
	// ErrNoSignature means the signature headers are missing or malformed.
	ErrNoSignature = errors.New("webhook signature missing or malformed")
	// ErrBadSignature means no signature matches any active secret.
	ErrBadSignature = errors.New("webhook signature does not match")
	// ErrStale means the signed timestamp is outside the tolerance.
	ErrStale = errors.New("webhook timestamp outside the tolerance")
	// ErrNoSecret means the system has no webhook secret configured.
	ErrNoSecret = errors.New("no webhook secret configured")
)

// Tolerances for the signed timestamp.
const (
	StandardTolerance = 5 * time.Minute
	StripeTolerance   = 300 * time.Second
)

// Standard Webhooks header names.
const (
	HeaderID        = "Webhook-Id"
	HeaderTimestamp = "Webhook-Timestamp"
	HeaderSignature = "Webhook-Signature"
	// HeaderStripeSignature is Stripe's signature header.
	HeaderStripeSignature = "Stripe-Signature"
)

// standardKey decodes a Standard Webhooks secret: base64 after "whsec_".
func standardKey(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || len(key) == 0 {
		return nil, fmt.Errorf("webhook secret is not whsec_<base64>")
	}
	return key, nil
}

// CheckStandardSecret reports whether secret is a usable Standard Webhooks
// secret: "whsec_" and the base64 of a non-empty key. Configuration refuses
// any other at start, since a secret that cannot be decoded would make every
// delivery fail its signature check.
func CheckStandardSecret(secret string) error {
	if !strings.HasPrefix(secret, "whsec_") {
		return errors.New("want whsec_ followed by a base64 key")
	}
	_, err := standardKey(secret)
	return err
}

// SignStandard returns the Standard Webhooks signature "v1,<base64>" of a
// message: HMAC-SHA256(key, id + "." + timestamp + "." + body).
func SignStandard(secret, id string, timestamp int64, body []byte) (string, error) {
	key, err := standardKey(secret)
	if err != nil {
		return "", err
	}
	return "v1," + base64.StdEncoding.EncodeToString(standardMAC(key, id, timestamp, body)), nil
}

func standardMAC(key []byte, id string, timestamp int64, body []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + strconv.FormatInt(timestamp, 10) + "."))
	mac.Write(body)
	return mac.Sum(nil)
}

// VerifyStandard checks a Standard Webhooks message against every active
// secret (two during a rotation) and every signature in the header (space
// separated), comparing in constant time, and the timestamp against now
// with a tolerance of five minutes either way. It returns the message id.
func VerifyStandard(secrets []string, h http.Header, body []byte, now time.Time) (string, error) {
	id, ts, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || ts == "" || sigs == "" {
		return "", ErrNoSignature
	}
	timestamp, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "", ErrNoSignature
	}
	if len(secrets) == 0 {
		return "", ErrNoSecret
	}
	var candidates [][]byte
	for _, s := range strings.Fields(sigs) {
		version, sig, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue
		}
		if raw, err := base64.StdEncoding.DecodeString(sig); err == nil {
			candidates = append(candidates, raw)
		}
	}
	if len(candidates) == 0 {
		return "", ErrNoSignature
	}
	matched := false
	for _, secret := range secrets {
		key, err := standardKey(secret)
		if err != nil {
			continue
		}
		want := standardMAC(key, id, timestamp, body)
		for _, got := range candidates {
			matched = hmac.Equal(got, want) || matched
		}
	}
	if !matched {
		return "", ErrBadSignature
	}
	// The timestamp is checked after the signature, so that only an
	// authentic but old message is reported as stale.
	if d := now.Sub(time.Unix(timestamp, 0)); d > StandardTolerance || d < -StandardTolerance {
		return "", ErrStale
	}
	return id, nil
}

// SignStripe returns a Stripe-Signature header value for a payload:
// "t=<timestamp>,v1=<hex HMAC-SHA256(secret, t + "." + body)>". Stripe uses
// the whole signing secret, "whsec_" included, as the key.
func SignStripe(secret string, timestamp int64, body []byte) string {
	return "t=" + strconv.FormatInt(timestamp, 10) + ",v1=" + hex.EncodeToString(stripeMAC(secret, timestamp, body))
}

func stripeMAC(secret string, timestamp int64, body []byte) []byte {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(timestamp, 10) + "."))
	mac.Write(body)
	return mac.Sum(nil)
}

// VerifyStripe checks a Stripe-Signature header against every active
// secret and every v1 signature in it, in constant time, with Stripe's
// 300 s tolerance.
func VerifyStripe(secrets []string, h http.Header, body []byte, now time.Time) error {
	header := h.Get(HeaderStripeSignature)
	if header == "" {
		return ErrNoSignature
	}
	var timestamp int64 = -1
	var candidates [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				timestamp = n
			}
		case "v1":
			if raw, err := hex.DecodeString(v); err == nil {
				candidates = append(candidates, raw)
			}
		}
	}
	if timestamp < 0 || len(candidates) == 0 {
		return ErrNoSignature
	}
	if len(secrets) == 0 {
		return ErrNoSecret
	}
	matched := false
	for _, secret := range secrets {
		want := stripeMAC(secret, timestamp, body)
		for _, got := range candidates {
			matched = hmac.Equal(got, want) || matched
		}
	}
	if !matched {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(timestamp, 0)); d > StripeTolerance || d < -StripeTolerance {
		return ErrStale
	}
	return nil
}
