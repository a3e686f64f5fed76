package api

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/handoff-hq/handoff/codec"
)

func testCodec(t *testing.T, id string) *codec.Encryption {
	t.Helper()
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	keys, err := codec.ParseKeys([]string{id + ":" + base64.StdEncoding.EncodeToString(raw)})
	if err != nil {
		t.Fatal(err)
	}
	e, err := codec.New(keys)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// The codec endpoint decodes for operators only (an operator token or the
// operations page's cookie), grants CORS to the Web UI's origin alone, and
// names a key it does not have.
func TestTheCodecEndpointDecodesForOperatorsOnly(t *testing.T) {
	enc := testCodec(t, "k1")
	s, err := New(Options{Orders: &fakeOrders{}, Events: &fakeEvents{}, Operators: &fakeOperators{}, Reconciliations: &fakeReconciliations{},
		APITokens: []string{token}, OperatorTokens: []string{operatorToken}, WebUIURL: "http://localhost:8233", Namespace: "default",
		Ready: func(context.Context) error { return nil }, Codec: enc})
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := codec.DataConverter(enc).ToPayload(map[string]string{"email": "zebulon.planted@example.com"})
	body, _ := protojson.Marshal(&commonpb.Payloads{Payloads: []*commonpb.Payload{sealed}})
	post := func(path, auth, origin string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		for _, c := range cookies {
			req.AddCookie(c)
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		return rec
	}
	decoded := func(rec *httptest.ResponseRecorder) string {
		var out commonpb.Payloads
		if err := protojson.Unmarshal(rec.Body.Bytes(), &out); err != nil || len(out.Payloads) != 1 {
			t.Fatalf("answer %d %s", rec.Code, rec.Body)
		}
		var v map[string]string
		if err := converter.GetDefaultDataConverter().FromPayload(out.Payloads[0], &v); err != nil {
			t.Fatalf("decoded payload: %v", err)
		}
		return v["email"]
	}

	if rec := post("/codec/decode", "", ""); rec.Code != http.StatusUnauthorized || strings.Contains(rec.Body.String(), "zebulon") {
		t.Errorf("without a token: %d %s", rec.Code, rec.Body)
	}
	if rec := post("/codec/decode", token, ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("with an API token: %d, want 401", rec.Code)
	}
	rec := post("/codec/decode", operatorToken, "")
	if got := decoded(rec); rec.Code != http.StatusOK || got != "zebulon.planted@example.com" {
		t.Errorf("operator token: %d %q", rec.Code, got)
	}
	// The operations page's cookie, from the Web UI's origin: decoded, with
	// the CORS grant for that origin and credentials.
	signIn := httptest.NewRecorder()
	form := httptest.NewRequest(http.MethodPost, "/ops/sign-in", strings.NewReader(url.Values{"token": {operatorToken}}.Encode()))
	form.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	s.ServeHTTP(signIn, form)
	rec = post("/codec/decode", "", "http://localhost:8233", signIn.Result().Cookies()...)
	if got := decoded(rec); got != "zebulon.planted@example.com" || rec.Header().Get("Access-Control-Allow-Origin") != "http://localhost:8233" ||
		rec.Header().Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("cookie from the Web UI: %d %q %v", rec.Code, got, rec.Header())
	}
	// Another origin: refused, and no grant, even with the token.
	rec = post("/codec/decode", operatorToken, "http://evil.example")
	if rec.Code != http.StatusForbidden || rec.Header().Get("Access-Control-Allow-Origin") != "" || strings.Contains(rec.Body.String(), "zebulon") {
		t.Errorf("another origin: %d %v", rec.Code, rec.Header())
	}
	pre := httptest.NewRequest(http.MethodOptions, "/codec/decode", nil)
	pre.Header.Set("Origin", "http://evil.example")
	pre.Header.Set("Access-Control-Request-Method", "POST")
	pr := httptest.NewRecorder()
	s.ServeHTTP(pr, pre)
	if pr.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin granted: %v", pr.Header())
	}
	pre.Header.Set("Origin", "http://localhost:8233")
	pr = httptest.NewRecorder()
	s.ServeHTTP(pr, pre)
	if pr.Code != http.StatusNoContent || pr.Header().Get("Access-Control-Allow-Origin") != "http://localhost:8233" ||
		!strings.Contains(pr.Header().Get("Access-Control-Allow-Headers"), "X-Namespace") {
		t.Errorf("preflight from the Web UI: %d %v", pr.Code, pr.Header())
	}
	// Encode, then decode: the same value.
	plain, _ := converter.GetDefaultDataConverter().ToPayload(map[string]string{"email": "a@example.com"})
	body, _ = protojson.Marshal(&commonpb.Payloads{Payloads: []*commonpb.Payload{plain}})
	rec = post("/codec/encode", operatorToken, "")
	if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), base64.StdEncoding.EncodeToString(plain.Data)) {
		t.Errorf("encode: %d %s", rec.Code, rec.Body)
	}
	// A payload of a key this server does not have: a problem naming it.
	foreign, _ := codec.DataConverter(testCodec(t, "retired")).ToPayload("x")
	body, _ = protojson.Marshal(&commonpb.Payloads{Payloads: []*commonpb.Payload{foreign}})
	rec = post("/codec/decode", operatorToken, "")
	if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), "unknown-payload-key") || !strings.Contains(rec.Body.String(), "retired") {
		t.Errorf("unknown key: %d %s", rec.Code, rec.Body)
	}
}
