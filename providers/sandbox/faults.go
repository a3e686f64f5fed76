package sandbox

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/handoff-hq/handoff/contracts"
)

// Fault modes the sandbox can inject into provider calls.
const (
	// FaultStatus answers Status (default 503) without doing the work.
	FaultStatus = "status"
	// FaultRateLimit answers 429 with Retry-After (default 1 s).
	FaultRateLimit = "rate_limit"
	// FaultTimeoutBeforeCommit waits LatencyMS, then drops the connection
	// without doing the work: the caller cannot know.
	FaultTimeoutBeforeCommit = "timeout_before_commit"
	// FaultTimeoutAfterCommit does the work, waits LatencyMS, then drops
	// the connection without answering: the caller cannot know either.
	FaultTimeoutAfterCommit = "timeout_after_commit"
	// FaultLatency waits LatencyMS, then serves the call normally.
	FaultLatency = "latency"
	// FaultExpiredToken answers 401 token_expired and revokes the token the
	// call carried, so the caller must fetch a new one.
	FaultExpiredToken = "expired_token"
)

// FaultShape serves the call, then changes its answer's shape the way a
// provider drifting from its contract would, as Shape (one of
// contracts.DriftKinds) says: on Field of
// the record (of every record of a list),
//   - missing_field removes it;
//   - wrong_type gives it a value of another JSON type;
//   - wrong_format gives it a value of the right type that breaks its
//     format;
//   - unknown_value sets it to Value (default "unexpected");
//   - unknown_field adds it, with Value;
//
// and api_version answers with Value (default "2") as the API version.
const FaultShape = "shape"

var faultModes = []string{FaultStatus, FaultRateLimit, FaultTimeoutBeforeCommit, FaultTimeoutAfterCommit, FaultLatency, FaultExpiredToken, FaultShape,
	FaultDuplicateWebhooks, FaultReorderWebhooks, FaultDelayWebhooks}

// isWebhook reports whether the fault changes webhook delivery rather than
// provider calls.
func (f *Fault) isWebhook() bool {
	return f.Mode == FaultDuplicateWebhooks || f.Mode == FaultReorderWebhooks || f.Mode == FaultDelayWebhooks
}

// Fault is one injected failure, as posted to /_sandbox/faults. It applies to
// the calls of System (and of Operation, when set; and only to calls whose
// Idempotency-Key starts with KeyPrefix, when set): to the next Count of
// them, or to a Rate fraction of them (chosen by a generator seeded with
// Seed, so a run is repeatable), or to all of them until cleared.
type Fault struct {
	System     string  `json:"system"`
	Operation  string  `json:"operation,omitempty"`
	KeyPrefix  string  `json:"key_prefix,omitempty"`
	Mode       string  `json:"mode"`
	Count      int     `json:"count,omitempty"`
	Status     int     `json:"status,omitempty"`
	RetryAfter int     `json:"retry_after,omitempty"`
	LatencyMS  int     `json:"latency_ms,omitempty"`
	Rate       float64 `json:"rate,omitempty"`
	Seed       uint64  `json:"seed,omitempty"`
	// Shape, Field and Value describe a FaultShape.
	Shape string `json:"shape,omitempty"`
	Field string `json:"field,omitempty"`
	Value string `json:"value,omitempty"`

	// Hits counts the calls the fault was applied to.
	Hits int `json:"hits"`

	rng *rand.Rand
}

func (f *Fault) validate() error {
	var problems []string
	if f.System == "" {
		problems = append(problems, "system is required")
	}
	known := false
	for _, m := range faultModes {
		known = known || f.Mode == m
	}
	if !known {
		problems = append(problems, fmt.Sprintf("mode %q: want one of %s", f.Mode, strings.Join(faultModes, ", ")))
	}
	if f.Count < 0 || f.Rate < 0 || f.Rate > 1 || f.LatencyMS < 0 || f.RetryAfter < 0 {
		problems = append(problems, "count, latency_ms and retry_after must not be negative, rate must be within [0, 1]")
	}
	if f.Mode == FaultShape {
		switch {
		case !slices.Contains(contracts.DriftKinds, f.Shape):
			problems = append(problems, fmt.Sprintf("shape %q: want one of %s", f.Shape, strings.Join(contracts.DriftKinds, ", ")))
		case f.Shape != contracts.DriftAPIVersion && f.Field == "":
			problems = append(problems, "field is required for a shape change other than api_version")
		}
	}
	if f.Mode == FaultStatus && f.Status != 0 && (f.Status < 400 || f.Status > 599) {
		problems = append(problems, "status must be a 4xx or 5xx code")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

// faults is the set of active faults, consulted on every provider call.
type faults struct {
	mu     sync.Mutex
	active []*Fault
}

// take returns the fault that applies to this call, if any, and counts it.
func (fs *faults) take(system, operation, key string) *Fault {
	return fs.takeExcept(system, operation, key, nil)
}

// takeAll returns every fault that applies to this call, counting each;
// webhook faults combine (an event can be both duplicated and held back).
func (fs *faults) takeAll(system, operation, key string) []*Fault {
	var out []*Fault
	for {
		f := fs.takeExcept(system, operation, key, out)
		if f == nil {
			return out
		}
		out = append(out, f)
	}
}

// takeExcept is take, skipping faults of the modes already taken.
func (fs *faults) takeExcept(system, operation, key string, taken []*Fault) *Fault {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for i, f := range fs.active {
		if f.System != system || (f.Operation != "" && f.Operation != operation) || !strings.HasPrefix(key, f.KeyPrefix) ||
			f.isWebhook() != (operation == webhookOperation) || modeTaken(taken, f.Mode) {
			continue
		}
		if f.Rate > 0 && f.rng.Float64() >= f.Rate {
			continue
		}
		f.Hits++
		hit := *f
		if f.Count > 0 {
			f.Count--
			if f.Count == 0 {
				fs.active = append(fs.active[:i], fs.active[i+1:]...)
			}
		}
		return &hit
	}
	return nil
}

func modeTaken(taken []*Fault, mode string) bool {
	for _, f := range taken {
		if f.Mode == mode {
			return true
		}
	}
	return false
}

func (fs *faults) add(f *Fault) {
	seed := f.Seed
	if seed == 0 {
		seed = 1
	}
	f.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.active = append(fs.active, f)
}

func (fs *faults) clear() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.active = nil
}

func (fs *faults) list() []Fault {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := make([]Fault, 0, len(fs.active))
	for _, f := range fs.active {
		out = append(out, *f)
	}
	return out
}

// inject applies a fault to one call. It reports whether the fault answered
// the call itself; when it did not, the caller serves the call.
func (s *Server) inject(f *Fault, w http.ResponseWriter, r *http.Request, serve http.HandlerFunc) bool {
	latency := time.Duration(f.LatencyMS) * time.Millisecond
	switch f.Mode {
	case FaultLatency:
		sleep(r, latency)
		return false
	case FaultStatus:
		status := f.Status
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		typ := "api_error"
		if status < 500 {
			typ = "invalid_request_error"
		}
		(&apiError{status: status, typ: typ, code: "injected_fault", message: fmt.Sprintf("injected %d", status)}).write(w)
	case FaultRateLimit:
		retryAfter := f.RetryAfter
		if retryAfter == 0 {
			retryAfter = 1
		}
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
		(&apiError{status: http.StatusTooManyRequests, typ: "rate_limit_error", code: "rate_limited", message: "too many requests"}).write(w)
	case FaultTimeoutBeforeCommit:
		sleep(r, latency)
		dropConnection(w)
	case FaultTimeoutAfterCommit:
		// Do the work, throw the answer away.
		serve(httptest.NewRecorder(), r)
		sleep(r, latency)
		dropConnection(w)
	case FaultShape:
		reshape(f, w, r, serve)
	case FaultExpiredToken:
		s.auth.revokeToken(bearer(r))
		(&apiError{status: http.StatusUnauthorized, typ: "authentication_error", code: "token_expired", message: "the access token expired"}).write(w)
	}
	return true
}

// reshape serves the call and changes its answer as a FaultShape says.
func reshape(f *Fault, w http.ResponseWriter, r *http.Request, serve http.HandlerFunc) {
	rec := httptest.NewRecorder()
	serve(rec, r)
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	body := rec.Body.Bytes()
	var answer map[string]any
	if f.Shape == contracts.DriftAPIVersion {
		w.Header().Set(HeaderVersion, cmp.Or(f.Value, "2"))
	} else if rec.Code < 300 && json.Unmarshal(body, &answer) == nil {
		records := []any{answer}
		if list, ok := answer["data"].([]any); ok && answer["object"] == "list" {
			records = list
		}
		for _, rec := range records {
			if m, ok := rec.(map[string]any); ok {
				reshapeRecord(f, m)
			}
		}
		body, _ = json.Marshal(answer)
		w.Header().Del("Content-Length")
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(body)
}

func reshapeRecord(f *Fault, m map[string]any) {
	v, present := m[f.Field]
	switch f.Shape {
	case contracts.DriftMissingField:
		delete(m, f.Field)
	case contracts.DriftWrongType:
		if _, isString := v.(string); isString {
			m[f.Field] = 12345
		} else {
			m[f.Field] = "12345"
		}
	case contracts.DriftWrongFormat:
		if _, isNumber := v.(float64); isNumber {
			m[f.Field] = -1
		} else if present {
			m[f.Field] = "not valid!"
		}
	case contracts.DriftUnknownValue:
		m[f.Field] = cmp.Or(f.Value, "unexpected")
	case contracts.DriftUnknownField:
		m[f.Field] = cmp.Or(f.Value, "added")
	}
}

// sleep waits d, or less when the caller goes away. It reads the request
// body first: net/http notices a closed connection only once the body is
// read, and a provider that hangs has received the request all the same.
func sleep(r *http.Request, d time.Duration) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes+1))
	r.Body = io.NopCloser(bytes.NewReader(body))
	select {
	case <-time.After(d):
	case <-r.Context().Done():
	}
}

// dropConnection closes the connection without an answer, as a provider
// that timed out or crashed would.
func dropConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler) // net/http closes the connection
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

// AddFault switches a fault on, as POST /_sandbox/faults does.
func (s *Server) AddFault(f Fault) error {
	if err := f.validate(); err != nil {
		return err
	}
	s.faults.add(&f)
	return nil
}

func (s *Server) postFault(w http.ResponseWriter, r *http.Request) {
	var f Fault
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		invalid("body_invalid", "fault is not valid JSON: "+err.Error()).write(w)
		return
	}
	if err := f.validate(); err != nil {
		invalid("fault_invalid", err.Error()).write(w)
		return
	}
	s.faults.add(&f)
	writeJSON(w, http.StatusCreated, f)
}

func (s *Server) deleteFaults(w http.ResponseWriter, _ *http.Request) {
	s.faults.clear()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) getFaults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"faults": s.faults.list()})
}
