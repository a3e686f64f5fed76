package worker

import (
	"context"
	"reflect"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/workflow"

	"github.com/handoff-hq/handoff/codec"
	"github.com/handoff-hq/handoff/providers"
	"github.com/handoff-hq/handoff/workflows"
)

// correlationLogs gives every workflow's logger the correlation id its
// action was started with (kept in its memo), and every provider
// activity's logger the id of its call, so that the SDK's lines and
// handoff's own carry the id the API, the webhooks and the provider calls
// log.
type correlationLogs struct {
	interceptor.WorkerInterceptorBase
	// payloads reads the memo; nil reads it with Temporal's default.
	payloads converter.DataConverter
}

func (c *correlationLogs) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &correlationInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, payloads: orDefault(c.payloads)}
}

// orDefault is dc, or handoff's plain data converter.
func orDefault(dc converter.DataConverter) converter.DataConverter {
	if dc == nil {
		return codec.Plain
	}
	return dc
}

type correlationInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	payloads converter.DataConverter
}

func (i *correlationInbound) Init(outbound interceptor.WorkflowOutboundInterceptor) error {
	return i.Next.Init(&correlationOutbound{WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: outbound}, payloads: i.payloads})
}

type correlationOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
	payloads converter.DataConverter
}

func (o *correlationOutbound) GetLogger(ctx workflow.Context) log.Logger {
	l := o.Next.GetLogger(ctx)
	var id string
	if p, ok := workflow.GetInfo(ctx).Memo.GetFields()[workflows.MemoCorrelationID]; ok &&
		o.payloads.FromPayload(p, &id) == nil && id != "" {
		return log.With(l, "correlation_id", id)
	}
	return l
}

// InterceptActivity gives the logger of every activity whose input names
// its provider call (a Call field, as every step's input has) that call's
// correlation id.
func (*correlationLogs) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &correlationActivity{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}}
}

type correlationActivity struct {
	interceptor.ActivityInboundInterceptorBase
	id string
}

func (i *correlationActivity) Init(outbound interceptor.ActivityOutboundInterceptor) error {
	return i.Next.Init(&correlationActivityOutbound{ActivityOutboundInterceptorBase: interceptor.ActivityOutboundInterceptorBase{Next: outbound}, in: i})
}

func (i *correlationActivity) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	for _, arg := range in.Args {
		if id := callCorrelation(arg); id != "" {
			i.id = id
			break
		}
	}
	return i.Next.ExecuteActivity(ctx, in)
}

// callCorrelation is the correlation id of an activity input's Call.
func callCorrelation(arg any) string {
	v := reflect.Indirect(reflect.ValueOf(arg))
	if v.Kind() != reflect.Struct {
		return ""
	}
	f := v.FieldByName("Call")
	if !f.IsValid() || !f.CanInterface() {
		return ""
	}
	call, _ := f.Interface().(providers.Call)
	return call.CorrelationID
}

type correlationActivityOutbound struct {
	interceptor.ActivityOutboundInterceptorBase
	in *correlationActivity
}

func (o *correlationActivityOutbound) GetLogger(ctx context.Context) log.Logger {
	if o.in.id != "" {
		return log.With(o.Next.GetLogger(ctx), "correlation_id", o.in.id)
	}
	return o.Next.GetLogger(ctx)
}
