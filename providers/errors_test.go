package providers

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/handoff-hq/handoff/action"
)

func TestClassifyStatus(t *testing.T) {
	tests := []struct {
		status       int
		wantCategory action.Category
		wantType     string
	}{
		{http.StatusBadRequest, action.CategoryPermanent, action.TypeInvalidInput},
		{http.StatusUnauthorized, action.CategoryPermanent, action.TypeUnauthorized},
		{http.StatusForbidden, action.CategoryPermanent, action.TypeForbidden},
		{http.StatusNotFound, action.CategoryPermanent, action.TypeNotFound},
		{http.StatusConflict, action.CategoryPermanent, action.TypeConflict},
		{http.StatusUnprocessableEntity, action.CategoryPermanent, action.TypeInvalidInput},
		{http.StatusRequestTimeout, action.CategoryTemporary, action.TypeTemporary},
		{http.StatusTooManyRequests, action.CategoryTemporary, action.TypeTemporary},
		{http.StatusInternalServerError, action.CategoryTemporary, action.TypeTemporary},
		{http.StatusBadGateway, action.CategoryTemporary, action.TypeTemporary},
		{http.StatusServiceUnavailable, action.CategoryTemporary, action.TypeTemporary},
		{http.StatusGatewayTimeout, action.CategoryTemporary, action.TypeTemporary},
		{599, action.CategoryTemporary, action.TypeTemporary},
		{http.StatusTeapot, action.CategoryPermanent, action.TypeUnsupported},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			gotCategory, gotType := ClassifyStatus(tt.status)
			if gotCategory != tt.wantCategory || gotType != tt.wantType {
				t.Errorf("ClassifyStatus(%d) = %s, %s; want %s, %s", tt.status, gotCategory, gotType, tt.wantCategory, tt.wantType)
			}
		})
	}
}

func TestClassifyPrefersTheProvidersErrorType(t *testing.T) {
	tests := []struct {
		status       int
		errorType    string
		wantCategory action.Category
		wantType     string
	}{
		{402, "card_error", action.CategoryPermanent, action.TypeCardDeclined},
		{400, "idempotency_error", action.CategoryPermanent, action.TypeConflict},
		{429, "rate_limit_error", action.CategoryTemporary, action.TypeTemporary},
		{500, "api_error", action.CategoryTemporary, action.TypeTemporary},
		{401, "authentication_error", action.CategoryPermanent, action.TypeUnauthorized},
		{400, "invalid_request_error", action.CategoryPermanent, action.TypeInvalidInput},
		{404, "invalid_request_error", action.CategoryPermanent, action.TypeNotFound},
		{503, "", action.CategoryTemporary, action.TypeTemporary},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d %s", tt.status, tt.errorType), func(t *testing.T) {
			gotCategory, gotType := Classify(tt.status, tt.errorType)
			if gotCategory != tt.wantCategory || gotType != tt.wantType {
				t.Errorf("Classify(%d, %q) = %s, %s; want %s, %s", tt.status, tt.errorType, gotCategory, gotType, tt.wantCategory, tt.wantType)
			}
		})
	}
}

func TestCategoryOf(t *testing.T) {
	wrapped := fmt.Errorf("create charge: %w", &Error{Category: action.CategoryAmbiguous})
	if got := CategoryOf(wrapped); got != action.CategoryAmbiguous {
		t.Errorf("CategoryOf(wrapped ambiguous) = %s, want ambiguous", got)
	}
	if got := CategoryOf(errors.New("unclassified")); got != action.CategoryTemporary {
		t.Errorf("CategoryOf(plain error) = %s, want temporary", got)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		value string
		want  int
	}{
		{"empty", "", 0},
		{"seconds", "3", 3},
		{"http date", now.Add(90 * time.Second).Format(http.TimeFormat), 90},
		{"date in the past", now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"garbage", "soon", 0},
		{"negative", "-4", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retryAfterSeconds(tt.value, now); got != tt.want {
				t.Errorf("retryAfterSeconds(%q) = %d, want %d", tt.value, got, tt.want)
			}
		})
	}
}
