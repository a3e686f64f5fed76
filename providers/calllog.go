package providers

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/handoff-hq/handoff/action"
)

// CallContext is what the caller of a provider knows about a call that
// the provider's client does not: the business action and workflow it
// belongs to (as log attributes), the attempt it is, and how many attempts
// there are. The workers put it in the context of every provider activity.
type CallContext struct {
	Attrs       []slog.Attr
	Attempt     int32
	MaxAttempts int32
}

type callContextKey struct{}

// WithCallContext returns a context that carries cc to the provider
// clients, which log it with every call.
func WithCallContext(ctx context.Context, cc CallContext) context.Context {
	return context.WithValue(ctx, callContextKey{}, cc)
}

func callContextOf(ctx context.Context) CallContext {
	cc, _ := ctx.Value(callContextKey{}).(CallContext)
	return cc
}

// endpoint is the operation's endpoint as a template, with no query and no
// ids: the contract's path when it declares the operation ("/charges/{id}"),
// else the request's path without its query.
func (c *HTTPClient) endpoint(r Request) string {
	path := r.Path
	if c.contract != nil {
		if op, ok := c.contract.Operation(r.Operation); ok && op.Path != "" {
			path = op.Path
		}
	}
	path, _, _ = strings.Cut(path, "?")
	return path
}

// logCall logs and counts one call of the client.
func (c *HTTPClient) logCall(ctx context.Context, r Request, start time.Time, tr callTrace, err error) {
	CallRecorder{System: c.system, Log: c.log, Metrics: c.metrics}.Record(ctx, CallRecord{
		Operation: r.Operation, Method: r.Method, Endpoint: c.endpoint(r), Call: r.Call,
		Sent: tr.sent, Status: tr.status, RemoteRef: tr.remoteRef, Took: time.Since(start), Err: err,
	})
}

// CallRecorder writes the one line every provider call gets, and counts
// it: what was called and for which action, how it ended and whether it
// will be tried again. It names records by their references, never by the
// request's or the answer's content. The HTTPClient records every call it
// makes; adapters that speak another protocol (SMTP) record theirs.
type CallRecorder struct {
	System string
	// Log gets the line and Metrics the counts; either may be nil.
	Log     *slog.Logger
	Metrics *Metrics
}

// CallRecord is one finished call.
type CallRecord struct {
	Operation, Method string
	// Endpoint is the operation's endpoint as a template: no ids, no
	// query values.
	Endpoint string
	Call     Call
	// Sent is whether the request left handoff; Status is the answer's
	// status (an SMTP reply code), 0 for none.
	Sent      bool
	Status    int
	RemoteRef string
	Took      time.Duration
	Err       error
}

// Record logs and counts one call.
func (c CallRecorder) Record(ctx context.Context, r CallRecord) {
	cc := callContextOf(ctx)
	outcome, retry := "ok", false
	var pe *Error
	if r.Err != nil {
		outcome = "failed"
		switch {
		case !r.Sent:
			outcome = "not_sent"
		case r.Status == 0:
			outcome = "no_answer"
		}
		retry = cc.MaxAttempts == 0 || cc.Attempt < cc.MaxAttempts
		if errors.As(r.Err, &pe) {
			retry = retry && (pe.Category == action.CategoryTemporary || pe.Category == action.CategoryAmbiguous) && !pe.Final
		} else {
			pe = nil
		}
	}
	c.Metrics.observe(c.System, r.Operation, outcome, r.Sent, r.Status, r.Took, pe, retry)
	if c.Log == nil {
		return
	}
	attrs := []slog.Attr{
		slog.String("system", c.System), slog.String("operation", r.Operation), slog.String("method", r.Method),
		slog.String("endpoint", r.Endpoint), slog.Int("status", r.Status),
		slog.Int64("duration_ms", r.Took.Milliseconds()),
		slog.String("idempotency_key", r.Call.IdempotencyKey), slog.String("correlation_id", r.Call.CorrelationID),
	}
	if r.RemoteRef != "" {
		attrs = append(attrs, slog.String("remote_ref", r.RemoteRef))
	}
	if cc.Attempt > 0 {
		attrs = append(attrs, slog.Int("attempt", int(cc.Attempt)))
	}
	attrs = append(attrs, cc.Attrs...)
	level := slog.LevelInfo
	if r.Err != nil {
		level = slog.LevelWarn
		if pe != nil {
			attrs = append(attrs, slog.String("category", string(pe.Category)), slog.String("error_type", pe.Type))
		}
		attrs = append(attrs, slog.Bool("will_retry", retry))
	}
	attrs = append(attrs, slog.String("outcome", outcome))
	c.Log.LogAttrs(ctx, level, "provider call", attrs...)
}

// callTrace is what one call got to: sent to the provider, the status of
// its answer (0 for none) and the record it names.
type callTrace struct {
	sent   bool
	status int
	// remoteRef is the id of the record the answer names, if any.
	remoteRef string
}
