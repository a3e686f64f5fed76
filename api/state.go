package api

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/handoff-hq/handoff/control"
)

// Health reads what Temporal holds about handoff's state: the providers'
// pauses and backlogs and the actions waiting for an operator, listing at
// most listParked of those.
type Health interface {
	Health(ctx context.Context, listParked int) (control.Health, error)
}

// stateCacheFor is how long one read of the state serves scrapes: several
// Prometheus servers, or one scraping often, cost Temporal one read.
const stateCacheFor = 10 * time.Second

// stateCollector exports the state in Temporal as gauges, read when
// Prometheus scrapes (at most once per stateCacheFor).
type stateCollector struct {
	health Health

	up, backlog, backlogAge, paused, pausedFor, attention, oldest *prometheus.Desc

	mu   sync.Mutex
	last control.Health
	err  error
	at   time.Time
}

func newStateCollector(h Health) *stateCollector {
	return &stateCollector{
		health: h,
		up:     prometheus.NewDesc("handoff_temporal_state_up", "1 when the last read of handoff's state in Temporal succeeded (the gauges below are from it), else 0.", nil, nil),
		backlog: prometheus.NewDesc("handoff_task_queue_backlog",
			"Calls waiting in a provider's task queue (Temporal's approximate backlog count).", []string{"system"}, nil),
		backlogAge: prometheus.NewDesc("handoff_task_queue_oldest_task_age_seconds",
			"How long the oldest call in a provider's task queue has waited.", []string{"system"}, nil),
		paused: prometheus.NewDesc("handoff_provider_paused", "1 while an operator keeps the provider paused, else 0.", []string{"system"}, nil),
		pausedFor: prometheus.NewDesc("handoff_provider_paused_seconds",
			"How long the provider has been paused; 0 when it is not.", []string{"system"}, nil),
		attention: prometheus.NewDesc("handoff_actions_needing_attention",
			"Actions waiting for an operator, by kind, the step they wait at and its system.", []string{"kind", "step", "system"}, nil),
		oldest: prometheus.NewDesc("handoff_actions_needing_attention_oldest_age_seconds",
			"Age of the oldest action waiting for an operator, since it was placed; 0 when none waits.", nil, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.backlog, c.backlogAge, c.paused, c.pausedFor, c.attention, c.oldest} {
		ch <- d
	}
}

func (c *stateCollector) read() (control.Health, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) >= stateCacheFor {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c.last, c.err = c.health.Health(ctx, 0)
		cancel()
		c.at = time.Now()
	}
	return c.last, c.err
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	h, err := c.read()
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, p := range h.Providers {
		ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(p.Backlog), p.System)
		ch <- prometheus.MustNewConstMetric(c.backlogAge, prometheus.GaugeValue, p.BacklogAgeSeconds, p.System)
		paused, pausedFor := 0.0, 0.0
		if p.Paused {
			paused = 1
			if p.PausedSince != nil {
				pausedFor = time.Since(*p.PausedSince).Seconds()
			}
		}
		ch <- prometheus.MustNewConstMetric(c.paused, prometheus.GaugeValue, paused, p.System)
		ch <- prometheus.MustNewConstMetric(c.pausedFor, prometheus.GaugeValue, pausedFor, p.System)
	}
	for _, a := range h.Attention {
		ch <- prometheus.MustNewConstMetric(c.attention, prometheus.GaugeValue, float64(a.Count), a.Kind, a.Step, a.Provider)
	}
	oldest := 0.0
	if !h.OldestParkedAt.IsZero() {
		oldest = time.Since(h.OldestParkedAt).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, oldest)
}
