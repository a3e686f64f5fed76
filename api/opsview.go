package api

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/system"
	"github.com/handoff-hq/handoff/workflows"
)

// opsView is what the operations page shows.
type opsView struct {
	SignIn bool
	CSRF   string
	// Done and Error are the banners: what the last form did, or why it
	// was refused.
	Done, Error string
	// DoneKey names what Done says: retry, skip, abort, pause or resume.
	DoneKey string
	ReadAt  string
	Window  string
	WebUI   string

	Providers   []opsProvider
	StateError  string
	Parked      []opsParked
	ParkedTotal int
	Truncated   bool
	Webhooks    []opsWebhook
	Reconcile   *workflows.ReconcileReport
	ReconcileID string
	// Drift is how providers' answers differed from their contracts;
	// DriftRead is false when it could not be read.
	Drift     []opsDrift
	DriftRead bool
	// Problems lists what the page could not read.
	Problems []string
}

// opsDrift is one way a provider's answers differed from its contract.
type opsDrift struct {
	workflows.DriftSighting
	FirstAgo, LastAgo string
}

// opsProvider is one provider's line.
type opsProvider struct {
	System      string
	Calls       float64
	SuccessRate float64
	P95         string
	RateLimited float64
	Retries     float64
	Permanent   float64
	Credential  string
	// CredentialFailing is set when token fetches failed in the window.
	CredentialFailing bool
	Paused            bool
	PausedFor         string
	Reason            string
	Backlog           int64
	OldestTask        string
}

// opsParked is one action waiting for an operator.
type opsParked struct {
	control.Action
	Age   string
	WebUI string
}

// opsWebhook is one system's webhook intake.
type opsWebhook struct {
	System                    string
	Accepted, Refused, Failed float64
	DeliveryP95, ProcessP95   string
}

// opsView reads everything the page shows; what it cannot read is named in
// Problems, and the rest is shown all the same.
func (s *Server) opsView(c echo.Context) opsView {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 5*time.Second)
	defer cancel()
	sess, _ := s.session(c)
	v := opsView{CSRF: sess.csrf(), ReadAt: time.Now().UTC().Format("15:04:05 MST")}
	if s.webUI != "" {
		v.WebUI = fmt.Sprintf("%s/namespaces/%s/workflows", s.webUI, url.PathEscape(s.ns))
	}
	now, base, problems := s.stats.read(ctx)
	v.Problems = problems
	v.Window = "since the API started"
	if span := now.at.Sub(base.at); span > 0 {
		v.Window = "over the last " + age(span)
	}
	var h control.Health
	if s.health != nil {
		var err error
		if h, err = s.health.Health(ctx, 50); err != nil {
			v.StateError = "Temporal did not answer: the pause, backlog and parked actions are not shown."
			s.log.Warn("operations page: read state", "error", err, "correlation_id", correlationID(c))
		}
	}
	byName := map[string]control.ProviderStatus{}
	for _, p := range h.Providers {
		byName[p.System] = p
	}
	for _, name := range system.Names() {
		v.Providers = append(v.Providers, providerLine(name, byName[name], now.set, base.set))
		v.Webhooks = append(v.Webhooks, webhookLine(name, now.set, base.set))
	}
	for _, a := range h.Parked {
		v.Parked = append(v.Parked, opsParked{Action: a, Age: age(time.Since(a.StartedAt)), WebUI: s.links(a.WorkflowID)["web_ui"]})
	}
	v.ParkedTotal, v.Truncated = h.ParkedTotal, h.Truncated
	if r, err := s.reconciliations.LatestReconciliation(ctx); err == nil {
		v.Reconcile, v.ReconcileID = &r, s.links(r.ID)["web_ui"]
	}
	if drift, err := s.operators.ContractDrift(ctx); err == nil {
		v.DriftRead = true
		for _, d := range drift {
			v.Drift = append(v.Drift, opsDrift{DriftSighting: d, FirstAgo: age(time.Since(d.FirstSeen)), LastAgo: age(time.Since(d.LastSeen))})
		}
	} else {
		v.Problems = append(v.Problems, "contract drift")
		s.log.Warn("operations page: read contract drift", "error", err, "correlation_id", correlationID(c))
	}
	return v
}

func providerLine(name string, st control.ProviderStatus, now, base metricSet) opsProvider {
	sys := map[string]string{"system": name}
	calls := delta(now, base, "handoff_provider_requests_total", sys)
	ok := delta(now, base, "handoff_provider_requests_total", map[string]string{"system": name, "outcome": "ok"})
	p := opsProvider{
		System: name, Calls: calls, SuccessRate: math.NaN(),
		P95:         seconds(quantile(.95, now, base, "handoff_provider_request_duration_seconds", sys)),
		RateLimited: delta(now, base, "handoff_provider_rate_limited_total", sys),
		Retries:     delta(now, base, "handoff_provider_retries_total", sys),
		Permanent:   delta(now, base, "handoff_provider_permanent_failures_total", sys),
		Paused:      st.Paused, Reason: st.Reason, Backlog: st.Backlog, OldestTask: age(time.Duration(st.BacklogAgeSeconds * float64(time.Second))),
	}
	if calls > 0 {
		p.SuccessRate = ok / calls
	}
	if st.PausedSince != nil {
		p.PausedFor = age(time.Since(*st.PausedSince))
	}
	switch {
	case !now.has("handoff_credential_expires_in_seconds", sys):
		p.Credential = "no token in use"
	case now.sum("handoff_credential_expires_in_seconds", sys) > 0:
		p.Credential = "token valid for " + age(time.Duration(now.sum("handoff_credential_expires_in_seconds", sys))*time.Second)
	default:
		p.Credential = "token expired; renewed on the next call"
	}
	if failed := delta(now, base, "handoff_credential_refresh_failures_total", sys); failed > 0 {
		p.Credential += fmt.Sprintf("; %d failed token fetches", int(failed))
		p.CredentialFailing = true
	}
	return p
}

func webhookLine(name string, now, base metricSet) opsWebhook {
	sys := map[string]string{"system": name}
	w := opsWebhook{System: name,
		DeliveryP95: seconds(quantile(.95, now, base, "handoff_webhook_delivery_delay_seconds", sys)),
		ProcessP95:  seconds(quantile(.95, now, base, "handoff_webhook_processing_delay_seconds", sys)),
	}
	for _, r := range []string{"accepted", "finished", "late_payment", "unhandled", "foreign", "unlinked"} {
		w.Accepted += delta(now, base, "handoff_webhooks_total", map[string]string{"system": name, "result": r})
	}
	for _, r := range []string{"bad_signature", "stale", "malformed", "too_large"} {
		w.Refused += delta(now, base, "handoff_webhooks_total", map[string]string{"system": name, "result": r})
	}
	for _, r := range []string{"unavailable", "early"} {
		w.Failed += delta(now, base, "handoff_webhooks_total", map[string]string{"system": name, "result": r})
	}
	return w
}

// seconds shows a duration in seconds the way a person reads it.
func seconds(f float64) string {
	if math.IsNaN(f) {
		return "—"
	}
	if f < 1 {
		return fmt.Sprintf("%d ms", int(f*1000))
	}
	return fmt.Sprintf("%.1f s", f)
}

// age shows how long something has lasted, to the unit that matters.
func age(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%.1f h", d.Hours())
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}
