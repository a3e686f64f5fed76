package codec

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
)

func newKey(t *testing.T, id string) string {
	t.Helper()
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	return id + ":" + base64.StdEncoding.EncodeToString(raw)
}

func ring(t *testing.T, values ...string) *Encryption {
	t.Helper()
	keys, err := ParseKeys(values)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(keys)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

type order struct {
	Email, Name string
	Lines       []string
}

var planted = order{Email: "zebulon.planted@example.com", Name: "Zebulon Plantedname", Lines: []string{strings.Repeat("book ", 200)}}

// A payload is compressed and encrypted: nothing of it is readable, it is
// smaller than its plain form when it compresses, and it reads back.
func TestPayloadsAreEncryptedAndReadBack(t *testing.T) {
	a := newKey(t, "a")
	dc := DataConverter(ring(t, a))
	p, err := dc.ToPayload(planted)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := converter.GetDefaultDataConverter().ToPayload(planted)
	if bytes.Contains(p.Data, []byte("zebulon")) || bytes.Contains(p.Data, []byte("Plantedname")) {
		t.Fatal("the encrypted payload holds the plain value")
	}
	if string(p.Metadata[converter.MetadataEncoding]) != EncodingEncrypted || string(p.Metadata[MetadataKeyID]) != "a" {
		t.Errorf("metadata %v", p.Metadata)
	}
	if len(p.Data) >= len(plain.Data) {
		t.Errorf("%d bytes encrypted, %d plain: not compressed", len(p.Data), len(plain.Data))
	}
	var got order
	if err := dc.FromPayload(p, &got); err != nil || got.Email != planted.Email || got.Lines[0] != planted.Lines[0] {
		t.Fatalf("read back %+v, %v", got, err)
	}
	// Two encryptions of one value differ (a fresh nonce each).
	p2, _ := dc.ToPayload(planted)
	if bytes.Equal(p.Data, p2.Data) {
		t.Error("two encryptions are identical")
	}
	// Payloads written before encryption are read as they are.
	if err := dc.FromPayload(plain, &got); err != nil || got.Name != planted.Name {
		t.Errorf("a plaintext payload: %+v %v", got, err)
	}
}

// Rotation: with B added first, A's payloads still read and new ones use
// B; with A removed, A's payloads fail, naming the key.
func TestKeysRotate(t *testing.T) {
	a, b := newKey(t, "key-a"), newKey(t, "key-b")
	old, _ := DataConverter(ring(t, a)).ToPayload(planted)
	rotated := DataConverter(ring(t, b, a))
	var got order
	if err := rotated.FromPayload(old, &got); err != nil || got.Email != planted.Email {
		t.Fatalf("an A-era payload after B was added: %v", err)
	}
	fresh, _ := rotated.ToPayload(planted)
	if id := string(fresh.Metadata[MetadataKeyID]); id != "key-b" {
		t.Errorf("new payloads use %q, want key-b", id)
	}
	err := DataConverter(ring(t, b)).FromPayload(old, &got)
	if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), `"key-a"`) {
		t.Fatalf("an A-era payload without A: %v, want ErrUnknownKey naming key-a", err)
	}
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != "UnknownPayloadKey" {
		t.Errorf("the error is not typed UnknownPayloadKey: %v", err)
	}
}

// A payload altered, or read with another key under its id, does not open.
func TestAlteredPayloadsDoNotOpen(t *testing.T) {
	a := newKey(t, "a")
	e := ring(t, a)
	p, _ := DataConverter(e).ToPayload(planted)
	p.Data[len(p.Data)-1] ^= 1
	if _, err := e.Decode([]*commonpb.Payload{p}); !errors.Is(err, ErrUndecryptable) {
		t.Errorf("altered: %v", err)
	}
	other := ring(t, newKey(t, "a"))
	p, _ = DataConverter(e).ToPayload(planted)
	if _, err := other.Decode([]*commonpb.Payload{p}); !errors.Is(err, ErrUndecryptable) {
		t.Errorf("another key under the same id: %v", err)
	}
}

// Failures' messages are encoded like payloads.
func TestFailureMessagesAreEncrypted(t *testing.T) {
	fc := FailureConverter(ring(t, newKey(t, "a")))
	f := fc.ErrorToFailure(errors.New("charge for zebulon.planted@example.com declined"))
	if strings.Contains(f.GetMessage(), "zebulon") || f.GetEncodedAttributes() == nil {
		t.Fatalf("failure message in plain text: %q", f.GetMessage())
	}
	if err := fc.FailureToError(f); !strings.Contains(err.Error(), "zebulon.planted") {
		t.Errorf("read back: %v", err)
	}
}

// Bad keys are refused without their value in the error.
func TestParseKeysRefusesBadKeysWithoutShowingThem(t *testing.T) {
	secret := base64.StdEncoding.EncodeToString([]byte("sixteen-bytes!!!"))
	for name, values := range map[string][]string{
		"no id":      {secret},
		"short key":  {"a:" + secret},
		"not base64": {"a:not*base64*at*all"},
		"bad id":     {"a b:" + secret},
		"twice":      {newKey(t, "a"), newKey(t, "a")},
	} {
		_, err := ParseKeys(values)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error shows the key: %v", name, err)
		}
	}
	if keys, err := ParseKeys(nil); err != nil || len(keys) != 0 {
		t.Errorf("no keys: %v %v", keys, err)
	}
}

// A history's key ids are found in its JSON, for a clear error before a
// replay that could not decode it.
func TestMissingKeysOfAHistory(t *testing.T) {
	a, b := newKey(t, "key-a"), newKey(t, "key-b")
	p, _ := DataConverter(ring(t, a)).ToPayload(planted)
	history := []byte(`{"events":[{"input":{"payloads":[{"metadata":{"encryption-key-id":"` +
		base64.StdEncoding.EncodeToString(p.Metadata[MetadataKeyID]) + `"}}]}}]}`)
	if got := ring(t, b).MissingKeys(history); len(got) != 1 || got[0] != "key-a" {
		t.Errorf("ring without A: %v", got)
	}
	if got := ring(t, b, a).MissingKeys(history); len(got) != 0 {
		t.Errorf("ring with A: %v", got)
	}
	var none *Encryption
	if got := none.MissingKeys(history); len(got) != 1 {
		t.Errorf("no ring: %v", got)
	}
	if got := none.MissingKeys([]byte(`{"events":[]}`)); len(got) != 0 {
		t.Errorf("a plaintext history: %v", got)
	}
}

// BenchmarkEncodeDecode measures one order-sized payload's round trip.
func BenchmarkEncodeDecode(b *testing.B) {
	raw := make([]byte, 32)
	keys, _ := ParseKeys([]string{"k:" + base64.StdEncoding.EncodeToString(raw)})
	e, _ := New(keys)
	p, _ := converter.GetDefaultDataConverter().ToPayload(planted)
	for b.Loop() {
		enc, _ := e.Encode([]*commonpb.Payload{p})
		if _, err := e.Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}
