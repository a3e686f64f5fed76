package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/workflows"
)

// Reconciliations is what the reconciliation endpoints need.
type Reconciliations interface {
	StartReconciliation(ctx context.Context) (string, error)
	Reconciliation(ctx context.Context, id string) (workflows.ReconcileReport, error)
	LatestReconciliation(ctx context.Context) (workflows.ReconcileReport, error)
}

// ReconciliationAnswer is the answer while a reconciliation runs.
type ReconciliationAnswer struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	// Progress is where it stands, from its first page on.
	Progress *workflows.ReconcileStanding `json:"progress,omitempty"`
	Links    map[string]string            `json:"links"`
}

func (s *Server) reconciliationLinks(id string) map[string]string {
	links := s.links(id)
	links["self"] = "/v1/reconciliations/" + id
	return links
}

func (s *Server) startReconciliation(c echo.Context) error {
	id, err := s.reconciliations.StartReconciliation(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, ReconciliationAnswer{ID: id, Status: "running", Links: s.reconciliationLinks(id)})
}

func (s *Server) getReconciliation(c echo.Context) error {
	var report workflows.ReconcileReport
	var err error
	if id := c.Param("id"); id == "latest" {
		report, err = s.reconciliations.LatestReconciliation(c.Request().Context())
	} else {
		report, err = s.reconciliations.Reconciliation(c.Request().Context(), id)
	}
	if errors.Is(err, control.ErrRunning) {
		answer := ReconciliationAnswer{ID: report.ID, Status: "running", Links: s.reconciliationLinks(report.ID)}
		if running := (*control.RunningError)(nil); errors.As(err, &running) {
			answer.Progress = running.Progress
		}
		return c.JSON(http.StatusAccepted, answer)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, report)
}
