package activities

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/providers"
)

// Backoff bounds for retried provider calls. Temporal's own retry policy has
// no jitter, so activities choose every retry's delay themselves. The engine
// does not start an activity retry sooner than about a second after the
// failure (measured on the dev server: a requested 0.4 s comes back at
// 1.0 s, a requested 1.3 s at 1.3 s), so the jitter is spread above that floor.
const (
	backoffFloor    = time.Second
	backoffBase     = 2 * time.Second
	backoffCap      = 30 * time.Second
	retryAfterLimit = 10 * time.Minute
	// pausedRetry is when a call refused by a provider pause is tried
	// again; by then the worker has stopped polling the paused queue, so
	// the retry waits there without using further attempts.
	pausedRetry = 5 * time.Second
)

// FailureDetails travels with every activity failure, so that the workflow
// can record on the step what went wrong and how often it was tried.
type FailureDetails struct {
	Category action.Category
	Attempt  int32
	Status   int
	Code     string
}

// Fail turns a provider failure into the Temporal error that makes
// the right thing happen next: non-retryable for permanent failures, a
// jittered retry delay (never shorter than the provider's Retry-After) for
// the rest.
func Fail(ctx context.Context, op string, err error) error {
	attempt := activity.GetInfo(ctx).Attempt
	details := FailureDetails{Category: providers.CategoryOf(err), Attempt: attempt}
	typ, retryAfter := action.TypeTemporary, 0
	var pe *providers.Error
	if errors.As(err, &pe) {
		typ, retryAfter = pe.Type, pe.RetryAfter
		details.Status, details.Code = pe.Status, pe.Code
	}
	opts := temporal.ApplicationErrorOptions{Cause: err, Details: []any{details}}
	switch {
	case providers.CategoryOf(err) == action.CategoryPermanent, pe != nil && pe.Final:
		opts.NonRetryable = true
	case typ == action.TypePaused:
		// An operator's pause, not a failure of the provider.
		opts.NextRetryDelay, opts.Category = pausedRetry, temporal.ApplicationErrorCategoryBenign
	default:
		opts.NextRetryDelay = retryDelay(attempt, time.Duration(retryAfter)*time.Second, randomFloat)
	}
	return temporal.NewApplicationErrorWithOptions(op, typ, opts)
}

// retryDelay is exponential backoff with full jitter above the engine's
// floor, never below the provider's Retry-After: a random point in
// [floor, min(cap, base·2^(attempt-1))].
func retryDelay(attempt int32, retryAfter time.Duration, random func() float64) time.Duration {
	ceiling := backoffCap
	if attempt < 16 {
		ceiling = min(backoffCap, backoffBase<<max(attempt-1, 0))
	}
	d := backoffFloor + time.Duration(random()*float64(ceiling-backoffFloor))
	return max(d, min(retryAfter, retryAfterLimit))
}

// randomFloat is the jitter's source; retries need spread, not secrecy.
var randomFloat = rand.Float64
