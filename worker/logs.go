package worker

import (
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/workflow"

	"github.com/handoff-hq/handoff/workflows"
)

// correlationLogs gives every workflow's logger the correlation id its
// action was started with (kept in its memo), so that the SDK's lines and
// the workflows' own carry the id the API, the webhooks and the provider
// calls log.
type correlationLogs struct {
	interceptor.WorkerInterceptorBase
}

func (*correlationLogs) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &correlationInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}}
}

type correlationInbound struct {
	interceptor.WorkflowInboundInterceptorBase
}

func (i *correlationInbound) Init(outbound interceptor.WorkflowOutboundInterceptor) error {
	return i.Next.Init(&correlationOutbound{WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: outbound}})
}

type correlationOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
}

func (o *correlationOutbound) GetLogger(ctx workflow.Context) log.Logger {
	l := o.Next.GetLogger(ctx)
	var id string
	if p, ok := workflow.GetInfo(ctx).Memo.GetFields()[workflows.MemoCorrelationID]; ok &&
		converter.GetDefaultDataConverter().FromPayload(p, &id) == nil && id != "" {
		return log.With(l, "correlation_id", id)
	}
	return l
}
