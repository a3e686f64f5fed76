package api

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/handoff-hq/handoff/control"
)

// metrics are the API's own Prometheus series.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	placed   *prometheus.CounterVec
	webhooks *prometheus.CounterVec
	// delivery is a webhook's delay from the provider's event time to its
	// receipt here.
	delivery *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "handoff_http_requests_total", Help: "HTTP requests by method, route and status code.",
		}, []string{"method", "route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "handoff_http_request_duration_seconds", Help: "HTTP request latency by method and route.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route"}),
		placed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "handoff_orders_placed_total", Help: "POST /v1/orders outcomes: started, replayed, conflict, invalid, error.",
		}, []string{"result"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "handoff_webhooks_total", Help: "Webhook deliveries by system (unknown for a system handoff does not know) and result: accepted, finished, late_payment, early, unhandled, foreign, unknown_system, bad_signature, stale, malformed, too_large, unavailable.",
		}, []string{"system", "result"}),
		delivery: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "handoff_webhook_delivery_delay_seconds",
			Help:    "Time from the provider's event (its own timestamp) to the webhook's receipt, by system; retried deliveries included.",
			Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
		}, []string{"system"}),
	}
	reg.MustRegister(m.requests, m.latency, m.placed, m.webhooks, m.delivery)
	return m
}

func (m *metrics) webhook(system, result string) {
	m.webhooks.WithLabelValues(system, result).Inc()
}

// received stamps a webhook's news with its receipt and the request's
// correlation id, and observes how late the provider delivered it.
func (m *metrics) received(system string, occurred time.Time, now time.Time) {
	if !occurred.IsZero() {
		m.delivery.WithLabelValues(system).Observe(max(now.Sub(occurred), 0).Seconds())
	}
}

func (m *metrics) countPlaced(err error, replayed bool) {
	var invalid *control.ValidationError
	result := "started"
	switch {
	case errors.As(err, &invalid):
		result = "invalid"
	case errors.Is(err, control.ErrConflict):
		result = "conflict"
	case err != nil:
		result = "error"
	case replayed:
		result = "replayed"
	}
	m.placed.WithLabelValues(result).Inc()
}
