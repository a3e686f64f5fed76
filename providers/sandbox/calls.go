package sandbox

import (
	"net/http"
	"sync"
	"time"
)

// maxCalls bounds the call log; older entries are dropped first.
const maxCalls = 20000

// Call is one provider call the sandbox received, as GET /_sandbox/calls
// lists it: tests read it to prove how often and when a step was tried.
type Call struct {
	Time           time.Time `json:"time"`
	System         string    `json:"system"`
	Operation      string    `json:"operation"`
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
	Path           string    `json:"path"`
	// Fault names the injected fault mode, empty when none applied.
	Fault string `json:"fault,omitempty"`
}

type callLog struct {
	mu    sync.Mutex
	calls []Call
}

func (l *callLog) add(c Call) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.calls) == maxCalls {
		l.calls = append(l.calls[:0], l.calls[maxCalls/2:]...)
	}
	l.calls = append(l.calls, c)
}

// Calls returns the logged calls matching the non-empty filters.
func (s *Server) Calls(system, operation, key string) []Call {
	s.calls.mu.Lock()
	defer s.calls.mu.Unlock()
	var out []Call
	for _, c := range s.calls.calls {
		if (system == "" || c.System == system) && (operation == "" || c.Operation == operation) && (key == "" || c.IdempotencyKey == key) {
			out = append(out, c)
		}
	}
	return out
}

func (s *Server) getCalls(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	calls := s.Calls(q.Get("system"), q.Get("operation"), q.Get("idempotency_key"))
	if calls == nil {
		calls = []Call{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"calls": calls})
}
