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

// logCall writes the one line every provider call gets: what was called
// and for which action, how it ended and whether it will be tried again.
// It names records by their references, never by the request's or the
// answer's content.
func (c *HTTPClient) logCall(ctx context.Context, r Request, start time.Time, tr callTrace, err error) {
	if c.log == nil {
		return
	}
	cc := callContextOf(ctx)
	attrs := []slog.Attr{
		slog.String("system", c.system), slog.String("operation", r.Operation), slog.String("method", r.Method),
		slog.String("endpoint", c.endpoint(r)), slog.Int("status", tr.status),
		slog.Int64("duration_ms", time.Since(start).Milliseconds()),
		slog.String("idempotency_key", r.Call.IdempotencyKey), slog.String("correlation_id", r.Call.CorrelationID),
	}
	if cc.Attempt > 0 {
		attrs = append(attrs, slog.Int("attempt", int(cc.Attempt)))
	}
	attrs = append(attrs, cc.Attrs...)
	level, outcome := slog.LevelInfo, "ok"
	var pe *Error
	if errors.As(err, &pe) {
		level, outcome = slog.LevelWarn, "failed"
		retry := (pe.Category == action.CategoryTemporary || pe.Category == action.CategoryAmbiguous) && !pe.Final &&
			(cc.MaxAttempts == 0 || cc.Attempt < cc.MaxAttempts)
		attrs = append(attrs, slog.String("category", string(pe.Category)), slog.String("error_type", pe.Type),
			slog.Bool("will_retry", retry))
		switch {
		case !tr.sent:
			outcome = "not_sent"
		case tr.status == 0:
			outcome = "no_answer"
		}
	} else if err != nil {
		level, outcome = slog.LevelWarn, "failed"
	}
	attrs = append(attrs, slog.String("outcome", outcome))
	c.log.LogAttrs(ctx, level, "provider call", attrs...)
}

// callTrace is what one call got to: sent to the provider, and the status
// of its answer (0 for none).
type callTrace struct {
	sent   bool
	status int
}
