package providers

import (
	"net/http"
	"sync"
	"time"

	"github.com/handoff-hq/handoff/contracts"
)

// Sighting is one way a provider's answers to one operation differed from
// its contract, as one process saw it since it was last taken.
type Sighting struct {
	System, Operation string
	contracts.Drift
	Count       int64
	First, Last time.Time
}

// DriftLog gathers the drift a process's provider clients read, for a
// reporter to take and keep (worker.Workers sends it to Temporal). Every
// client of a process shares one, so each drift is logged once per process.
type DriftLog struct {
	mu      sync.Mutex
	seen    map[string]bool
	pending map[string]*Sighting
	order   []string
}

// maxDriftKeys bounds what a DriftLog remembers: field names come from the
// provider, and one that names fields after its records' ids must not grow
// a worker's memory. Beyond it drift is still counted by the metric.
const maxDriftKeys = 1000

// key names what a sighting is of.
func (s Sighting) key() string { return s.System + " " + s.Operation + " " + s.Kind + " " + s.Field }

// NewDriftLog returns an empty log.
func NewDriftLog() *DriftLog {
	return &DriftLog{seen: map[string]bool{}, pending: map[string]*Sighting{}}
}

// record adds one sighting and reports whether the process had not seen
// it before.
func (l *DriftLog) record(system, operation string, d contracts.Drift, at time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := Sighting{System: system, Operation: operation, Drift: d}.key()
	first := !l.seen[key]
	if first && len(l.seen) >= maxDriftKeys {
		return false
	}
	l.seen[key] = true
	s, ok := l.pending[key]
	if !ok {
		s = &Sighting{System: system, Operation: operation, Drift: d, First: at}
		l.pending[key] = s
		l.order = append(l.order, key)
	}
	s.Count++
	s.Last = at
	return first
}

// Take returns what was sighted since the last Take, oldest first.
func (l *DriftLog) Take() []Sighting {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Sighting, 0, len(l.order))
	for _, key := range l.order {
		out = append(out, *l.pending[key])
	}
	l.pending, l.order = map[string]*Sighting{}, nil
	return out
}

// Return puts back sightings that could not be kept, to be taken again.
func (l *DriftLog) Return(sightings []Sighting) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range sightings {
		key := r.key()
		s, ok := l.pending[key]
		if !ok {
			l.pending[key] = &r
			l.order = append(l.order, key)
			continue
		}
		s.Count += r.Count
		if r.First.Before(s.First) {
			s.First = r.First
		}
	}
}

// readDrift reads a 2xx answer against the contract: every way it differs
// is counted and gathered, and logged the first time the process sees it.
// It returns the required fields the answer lacks: handoff relies on them,
// so the answer cannot be; every other drift leaves the call as it was
// (see WithoutOptionalDrift for a field of another type).
func (c *HTTPClient) readDrift(r Request, header http.Header, body []byte) (lacking []string) {
	if c.contract == nil {
		return nil
	}
	now := time.Now()
	for _, d := range c.contract.Drift(r.Operation, header, body) {
		c.metrics.drifted(c.system, r.Operation, d.Kind)
		if first := c.drift.record(c.system, r.Operation, d, now); first && c.log != nil {
			c.log.Warn("provider answer differs from its contract", "system", c.system, "operation", r.Operation,
				"kind", d.Kind, "field", d.Field, "example", d.Example, "contract", c.contract.Source)
		}
		if d.Kind == contracts.DriftMissingField {
			lacking = append(lacking, d.Field)
		}
	}
	return lacking
}
