package providers

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handoff-hq/handoff/action"
)

// hangingTokenEndpoint accepts token requests and answers none of them
// until release is closed; then it issues tokens.
type hangingTokenEndpoint struct {
	release chan struct{}
	asked   atomic.Int32
}

func (h *hangingTokenEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.asked.Add(1)
	select {
	case <-h.release:
	case <-r.Context().Done():
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"access_token":"tok","token_type":"bearer","expires_in":3600}`)
}

func TestTokenEndpointThatNeverAnswersFailsEachCallAsTemporaryWithinItsTimeout(t *testing.T) {
	tokens := &hangingTokenEndpoint{release: make(chan struct{})}
	tokenSrv := httptest.NewServer(tokens)
	defer tokenSrv.Close()
	defer close(tokens.release)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, `{"id":"ch_1"}`)
	}))
	defer api.Close()

	const callTimeout = 300 * time.Millisecond
	c := NewHTTPClient("payments", api.URL, HTTPOptions{Timeout: callTimeout})
	// The fetch itself is bounded far beyond any call: callers must not
	// depend on it ending.
	c.SetAuth(NewClientCredentials("payments", tokenSrv.URL, "client", "secret", c.Transport(), time.Minute))

	// Several calls at once, while the one fetch hangs: each fails on its
	// own timeout as temporary, none waits behind another.
	const calls = 5
	var wg sync.WaitGroup
	errs := make([]error, calls)
	took := make([]time.Duration, calls)
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			errs[i] = c.Do(context.Background(), Request{Operation: "get_charge", Method: http.MethodGet, Path: "/charges/ch_1"}, nil)
			took[i] = time.Since(start)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		var pe *Error
		if !errors.As(err, &pe) || pe.Category != action.CategoryTemporary || pe.Operation != "fetch_token" {
			t.Errorf("call %d: err = %v, want a temporary fetch_token error", i, err)
		}
		// A generous bound: what matters is that the call ended while the
		// token endpoint still hangs (it would hang for a minute).
		if took[i] > 20*callTimeout {
			t.Errorf("call %d took %v with a %v call timeout: it waited behind the hung fetch", i, took[i], callTimeout)
		}
	}
	if got := tokens.asked.Load(); got != 1 {
		t.Errorf("token requests = %d, want 1: concurrent calls share one fetch", got)
	}

	// A caller whose own context ends earlier than the call timeout gets
	// its answer then, too.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- c.Do(ctx, Request{Operation: "get_charge", Method: http.MethodGet, Path: "/charges/ch_1"}, nil)
	}()
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a call whose context was cancelled succeeded without a token")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled call still waits for the hung token endpoint")
	}
}

func TestTokenIsFetchedOnceAndRefreshedAfterA401(t *testing.T) {
	var issued atomic.Int32
	tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n := issued.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"tok`+string(rune('0'+n))+`","token_type":"bearer","expires_in":3600}`)
	}))
	defer tokenSrv.Close()
	var refused atomic.Bool
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The first token is revoked after the third call.
		if r.Header.Get("Authorization") == "Bearer tok1" && refused.Load() {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, `{}`)
	}))
	defer api.Close()
	c := NewHTTPClient("payments", api.URL, HTTPOptions{Timeout: 5 * time.Second})
	c.SetAuth(NewClientCredentials("payments", tokenSrv.URL, "client", "secret", c.Transport(), 0))
	get := Request{Operation: "get_charge", Method: http.MethodGet, Path: "/charges/ch_1"}
	for i := range 3 {
		if err := c.Do(context.Background(), get, nil); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if got := issued.Load(); got != 1 {
		t.Fatalf("tokens issued for 3 calls = %d, want 1", got)
	}
	refused.Store(true)
	if err := c.Do(context.Background(), get, nil); err != nil {
		t.Fatalf("call after the token was revoked: %v, want it to refresh and succeed", err)
	}
	if got := issued.Load(); got != 2 {
		t.Errorf("tokens issued = %d, want 2 after one refusal", got)
	}
}
