package worker

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"
)

func TestRetryTriesUntilItSucceeds(t *testing.T) {
	tries := 0
	err := Retry(context.Background(), slog.New(slog.DiscardHandler), "connect", func(context.Context) error {
		tries++
		if tries < 3 {
			return errors.New("connection refused")
		}
		return nil
	})
	if err != nil || tries != 3 {
		t.Errorf("Retry = %v after %d tries, want success on the third", err, tries)
	}
}

func TestRetryStopsCleanlyWhenItsContextEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := Retry(ctx, slog.New(slog.DiscardHandler), "connect", func(context.Context) error { return errors.New("connection refused") })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Retry = %v, want the context's error, so that a stop is not reported as a failure", err)
	}
}
