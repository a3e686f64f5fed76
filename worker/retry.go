package worker

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Backoff of Retry: from retryFirst, doubling to retryMax, with full jitter.
const (
	retryFirst = 500 * time.Millisecond
	retryMax   = 30 * time.Second
	// retryAttemptTimeout bounds one attempt.
	retryAttemptTimeout = 30 * time.Second
)

// Retry runs fn until it succeeds or ctx ends, waiting with jittered,
// growing backoff between attempts and logging each failure. A process
// that starts while Temporal is briefly unreachable (a restart, a deploy of
// the cluster) waits for it instead of exiting.
func Retry(ctx context.Context, log *slog.Logger, what string, fn func(context.Context) error) error {
	wait := retryFirst
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, retryAttemptTimeout)
		err := fn(actx)
		cancel()
		if err == nil {
			if attempt > 1 {
				log.Info(what+": succeeded", "attempt", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return stopped(what, ctx, err)
		}
		delay := wait/2 + time.Duration(rand.Int64N(int64(wait/2)+1))
		log.Warn(what+": Temporal not ready, trying again", "attempt", attempt, "retry_in", delay.Round(time.Millisecond), "error", err)
		select {
		case <-ctx.Done():
			return stopped(what, ctx, err)
		case <-time.After(delay):
		}
		wait = min(wait*2, retryMax)
	}
}

// stopped is Retry's error when its context ended first: the context's
// error (a stop is not a failure), with the last attempt's.
func stopped(what string, ctx context.Context, last error) error {
	return fmt.Errorf("%s: stopped while waiting (last error: %v): %w", what, last, ctx.Err())
}
