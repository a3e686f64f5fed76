package sandbox

import (
	"net/http"
	"strings"
	"sync"
	"time"
)

// authority issues and checks the sandbox's OAuth2 access tokens. With no
// client configured the sandbox is open and every call is let through.
type authority struct {
	mu       sync.Mutex
	clientID string
	secret   string
	ttl      time.Duration
	revoked  bool
	// tokens maps each issued token to its expiry.
	tokens map[string]time.Time
	issued int
}

func (a *authority) enabled() bool { return a.clientID != "" }

// token serves POST /oauth/token (grant type client_credentials; the client
// authenticates with client_id and client_secret in the form or with HTTP
// Basic authentication).
func (a *authority) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.enabled() || a.revoked || id != a.clientID || secret != a.secret {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client", "error_description": "unknown or revoked client"})
		return
	}
	a.issued++
	tok := "sbx_at_" + randomTag() + randomTag()
	a.tokens[tok] = time.Now().Add(a.ttl)
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(a.ttl.Seconds())})
}

// check lets a call through when auth is off or its token is current.
func (a *authority) check(r *http.Request) *apiError {
	if !a.enabled() {
		return nil
	}
	tok := bearer(r)
	a.mu.Lock()
	expiry, ok := a.tokens[tok]
	a.mu.Unlock()
	switch {
	case tok == "":
		return &apiError{status: http.StatusUnauthorized, typ: "authentication_error", code: "token_missing", message: "send Authorization: Bearer <access token>"}
	case !ok:
		return &apiError{status: http.StatusUnauthorized, typ: "authentication_error", code: "token_invalid", message: "unknown or revoked access token"}
	case time.Now().After(expiry):
		return &apiError{status: http.StatusUnauthorized, typ: "authentication_error", code: "token_expired", message: "the access token expired"}
	}
	return nil
}

func (a *authority) revokeToken(tok string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.tokens, tok)
}

// revokeClient ends the client: its tokens stop working and no new ones are
// issued, as when a provider account's credentials are withdrawn.
func (a *authority) revokeClient() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.revoked = true
	a.tokens = map[string]time.Time{}
}

func (a *authority) restore() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.revoked = false
}

func (a *authority) tokensIssued() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.issued
}

func bearer(r *http.Request) string {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return strings.TrimSpace(tok)
}
