package conformance

import (
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/handoff-hq/handoff/contracts"
)

// HTTPPeer puts itself in front of an HTTP peer (the sandbox's handler, a
// reverse proxy to stripe-mock): it counts the requests, and answers them
// with a declared error while told to, in the shape HTTP providers use
// ({"error": {"type", "code", "message"}}).
type HTTPPeer struct {
	// Next is the real peer.
	Next http.Handler
	// Exempt requests are passed on even while an answer is forced (the
	// token endpoint of an OAuth2 provider, say).
	Exempt func(*http.Request) bool

	requests atomic.Int64
	mu       sync.Mutex
	forced   *contracts.Response
}

var _ Peer = (*HTTPPeer)(nil)

// ServeHTTP implements http.Handler.
func (p *HTTPPeer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	p.mu.Lock()
	forced := p.forced
	p.mu.Unlock()
	if forced == nil || (p.Exempt != nil && p.Exempt(r)) {
		p.Next.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(forced.Status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{
		"type": forced.ErrorType, "code": forced.Code, "message": "answered by the conformance suite",
	}})
}

// Answer forces the response on every request until restored.
func (p *HTTPPeer) Answer(_ string, r contracts.Response) (func(), bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.forced = &r
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.forced = nil
	}, true
}

// Requests counts the requests that reached the peer.
func (p *HTTPPeer) Requests() int { return int(p.requests.Load()) }
