package providers

import (
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/handoff-hq/handoff/action"
)

// Metrics are the Prometheus series of provider calls and credentials.
// Every label comes from a closed set: systems and operations are declared
// in code and contracts, outcomes and categories are handoff's own.
type Metrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	rateLimited *prometheus.CounterVec
	retries     *prometheus.CounterVec
	permanent   *prometheus.CounterVec
	refreshFail *prometheus.CounterVec
	drift       *prometheus.CounterVec
	expiresIn   *prometheus.Desc

	mu     sync.Mutex
	tokens map[string]func() time.Time
}

// NewMetrics registers the provider call metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "handoff_provider_requests_total",
			Help: "Provider calls by system, operation, outcome (ok, failed, not_sent, no_answer) and error category (none when it succeeded).",
		}, []string{"system", "operation", "outcome", "category"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "handoff_provider_request_duration_seconds",
			Help:    "Time from sending a provider call to reading its answer, by system and operation; calls not sent are not observed.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"system", "operation"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "handoff_provider_rate_limited_total", Help: "Provider answers 429 Too Many Requests, by system and operation.",
		}, []string{"system", "operation"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "handoff_provider_retries_total", Help: "Failed provider calls that will be tried again, by system, operation and error category.",
		}, []string{"system", "operation", "category"}),
		permanent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "handoff_provider_permanent_failures_total", Help: "Failed provider calls that will not be tried again (permanent, declined or out of attempts), by system, operation and error category.",
		}, []string{"system", "operation", "category"}),
		refreshFail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "handoff_credential_refresh_failures_total", Help: "Access token fetches that failed, by system and error category (permanent: the client was refused).",
		}, []string{"system", "category"}),
		drift: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "handoff_contract_drift_total",
			Help: "Provider answers that differ from their contract, by system, operation and kind (missing_field, wrong_type, wrong_format, unknown_value, unknown_field, api_version); an answer counts once per field that differs.",
		}, []string{"system", "operation", "kind"}),
		expiresIn: prometheus.NewDesc("handoff_credential_expires_in_seconds",
			"Seconds until the current access token of a system expires (negative once expired; absent before the first token).",
			[]string{"system"}, nil),
		tokens: map[string]func() time.Time{},
	}
	reg.MustRegister(m.requests, m.duration, m.rateLimited, m.retries, m.permanent, m.refreshFail, m.drift, m)
	return m
}

// Describe and Collect report the token expiry gauge, read at scrape time.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) { ch <- m.expiresIn }

func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for system, expiry := range m.tokens {
		if at := expiry(); !at.IsZero() {
			ch <- prometheus.MustNewConstMetric(m.expiresIn, prometheus.GaugeValue, time.Until(at).Seconds(), system)
		}
	}
}

// drifted counts one way an answer differed from its contract.
func (m *Metrics) drifted(system, operation, kind string) {
	if m == nil {
		return
	}
	m.drift.WithLabelValues(system, operation, kind).Inc()
}

// trackToken reports the expiry of system's current token.
func (m *Metrics) trackToken(system string, expiry func() time.Time) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tokens[system] = expiry
}

func (m *Metrics) tokenFailed(system string, err error) {
	if m == nil {
		return
	}
	category := action.CategoryTemporary
	var pe *Error
	if errors.As(err, &pe) {
		category = pe.Category
	}
	m.refreshFail.WithLabelValues(system, string(category)).Inc()
}

// observe counts one call as logCall describes it.
func (m *Metrics) observe(system, operation, outcome string, sent bool, status int, took time.Duration, pe *Error, retry bool) {
	if m == nil {
		return
	}
	category := "none"
	if pe != nil {
		category = string(pe.Category)
	} else if outcome != "ok" {
		category = string(action.CategoryTemporary)
	}
	m.requests.WithLabelValues(system, operation, outcome, category).Inc()
	if sent {
		m.duration.WithLabelValues(system, operation).Observe(took.Seconds())
	}
	if status == http.StatusTooManyRequests {
		m.rateLimited.WithLabelValues(system, operation).Inc()
	}
	switch {
	case outcome == "ok":
	case retry:
		m.retries.WithLabelValues(system, operation, category).Inc()
	default:
		m.permanent.WithLabelValues(system, operation, category).Inc()
	}
}
