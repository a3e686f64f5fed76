package workflows

import (
	"slices"

	"github.com/handoff-hq/handoff/action"
)

// activitySteps names the step each activity of an order runs for.
var activitySteps = map[string]string{
	"UpsertCustomer": StepCustomer,
	"CreateCharge":   StepCharge,
	"GetCharge":      StepPayment,
	"CreateInvoice":  StepInvoice,
	"SendEmail":      StepConfirmation,
	"RefundCharge":   StepRefund,
	"VoidInvoice":    StepVoidInvoice,
	"CancelCharge":   StepCancelCharge,
	"FindCharge":     StepCancelCharge,
}

// StepOfActivity names the order step an activity runs for.
func StepOfActivity(activityType string) (string, bool) {
	step, ok := activitySteps[activityType]
	return step, ok
}

// mainSteps are an order's steps in the order they run.
var mainSteps = []string{StepCustomer, StepCharge, StepPayment, StepInvoice, StepConfirmation}

// PendingActivity is an activity Temporal reports as scheduled or running
// for a workflow, as DescribeWorkflowExecution lists it.
type PendingActivity struct {
	Type    string
	Attempt int32
	// LastFailure is the message of the attempt that failed last, if any.
	LastFailure string
}

// Snapshot rebuilds an order's state from what Temporal keeps without a
// worker: the state the order last kept in its memo (at its last change of
// status), its status search attribute, and the activities running now.
// It serves reads while no worker answers the order's query. Steps that
// the snapshot shows unfinished but that lie before a running step have
// finished, since an order's steps run one after another (and a skip is
// always kept in the memo). Between two steps, with none running, the first
// unfinished step of a processing order shows running.
func Snapshot(memo OrderState, status action.Status, pending []PendingActivity) OrderState {
	s := memo
	s.Steps = slices.Clone(memo.Steps)
	if status != "" {
		s.Status = status
	}
	running := false
	for _, p := range pending {
		name, ok := activitySteps[p.Type]
		if !ok {
			continue
		}
		i := slices.IndexFunc(s.Steps, func(st Step) bool { return st.Name == name })
		if i < 0 {
			s.Steps = append(s.Steps, Step{Name: name})
			i = len(s.Steps) - 1
		}
		st := &s.Steps[i]
		st.Status = action.StepRunning
		running = true
		st.Attempts = max(st.Attempts, int(p.Attempt)-1)
		if p.LastFailure != "" {
			st.LastError = &StepError{Category: action.CategoryTemporary, Message: p.LastFailure}
		}
		if at := slices.Index(mainSteps, name); at > 0 {
			for j := range s.Steps {
				before := slices.Index(mainSteps, s.Steps[j].Name)
				unfinished := s.Steps[j].Status == action.StepPending || s.Steps[j].Status == action.StepRunning || s.Steps[j].Status == action.StepWaiting
				if before >= 0 && before < at && unfinished {
					s.Steps[j].Status = action.StepSucceeded
				}
			}
		}
	}
	waiting := slices.ContainsFunc(s.Steps, func(st Step) bool { return st.Status == action.StepWaiting })
	if !running && !waiting && s.Status == action.StatusProcessing {
		// Between two steps (a workflow task in flight), the step that
		// just ended shows running until the next one starts, rather than
		// pending again.
		for i := range s.Steps {
			if slices.Contains(mainSteps, s.Steps[i].Name) && s.Steps[i].Status == action.StepPending {
				s.Steps[i].Status = action.StepRunning
				break
			}
		}
	}
	return s
}
