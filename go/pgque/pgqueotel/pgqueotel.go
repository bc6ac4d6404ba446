// Package pgqueotel traces what pgque's Go SDK does with OpenTelemetry: a
// span for each send, receive, handler run and acknowledgement, and the
// sender's trace carried to the handler.
//
//	client = client.WithObserver(pgqueotel.New(otel.GetTracerProvider()))
//
// The trace context travels in the event: a send writes the W3C
// traceparent of its span (00-<trace id>-<span id>-<flags>) into one of the
// event's extra fields, Extra4 unless WithCarrier names another, when the
// event leaves that field unset (an event that sets it keeps its value, and
// its handler's span starts a trace of its own).  A handler's span is then a
// child of the send's span, across processes and languages: a consumer in
// another language finds the traceparent in that extra column.
package pgqueotel

import (
	"context"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/pgque/pgque/go/pgque"
)

// Tracer is a pgque.Observer that makes spans.
type Tracer struct {
	pgque.NopObserver // settled outcomes and the ticker are left to metrics
	tracer            trace.Tracer
	carrier           int
	prop              propagation.TraceContext
}

var _ pgque.Observer = (*Tracer)(nil)

// Option configures a Tracer.
type Option func(*Tracer)

// WithCarrier names the extra field (1 to 4) that carries the trace
// context; the default is 4.  Senders and handlers must agree on it.
func WithCarrier(extra int) Option {
	return func(t *Tracer) {
		if extra >= 1 && extra <= 4 {
			t.carrier = extra
		}
	}
}

// New returns a Tracer whose spans come from tp.
func New(tp trace.TracerProvider, opts ...Option) *Tracer {
	t := &Tracer{tracer: tp.Tracer("github.com/pgque/pgque/go/pgque"), carrier: 4}
	for _, opt := range opts {
		opt(t)
	}
	return t
}

// Attribute keys of pgque's spans, after OpenTelemetry's messaging
// conventions.
const (
	attrSystem      = attribute.Key("messaging.system")
	attrDestination = attribute.Key("messaging.destination.name")
	attrConsumer    = attribute.Key("messaging.consumer.group.name")
	attrOperation   = attribute.Key("messaging.operation.type")
	attrMessageID   = attribute.Key("messaging.message.id")
	attrBatchCount  = attribute.Key("messaging.batch.message_count")
	attrType        = attribute.Key("pgque.message.type")
	attrBatchID     = attribute.Key("pgque.batch_id")
	attrRetry       = attribute.Key("pgque.retry_count")
)

func (t *Tracer) extra(ev *pgque.Event) **string {
	return [...]**string{&ev.Extra1, &ev.Extra2, &ev.Extra3, &ev.Extra4}[t.carrier-1]
}

func (t *Tracer) messageExtra(msg pgque.Message) *string {
	return [...]*string{msg.Extra1, msg.Extra2, msg.Extra3, msg.Extra4}[t.carrier-1]
}

// StartSend starts a producer span and writes its context into each event
// whose carrier field is unset.
func (t *Tracer) StartSend(ctx context.Context, queue string, events []pgque.Event) (context.Context, func(error)) {
	attrs := []attribute.KeyValue{attrSystem.String("pgque"), attrDestination.String(queue), attrOperation.String("send")}
	if len(events) == 1 {
		attrs = append(attrs, attrType.String(events[0].Type))
	} else {
		attrs = append(attrs, attrBatchCount.Int(len(events)))
	}
	ctx, span := t.tracer.Start(ctx, "send "+queue, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	carrier := propagation.MapCarrier{}
	t.prop.Inject(ctx, carrier)
	if tp := carrier["traceparent"]; tp != "" {
		for i := range events {
			if f := t.extra(&events[i]); *f == nil {
				*f = &tp
			}
		}
	}
	return ctx, func(err error) { end(span, err) }
}

// StartReceive starts a consumer span for one receive call.
func (t *Tracer) StartReceive(ctx context.Context, queue, consumer string) func([]pgque.Message, error) {
	_, span := t.tracer.Start(ctx, "receive "+queue, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attrSystem.String("pgque"), attrDestination.String(queue), attrConsumer.String(consumer),
			attrOperation.String("receive")))
	return func(msgs []pgque.Message, err error) {
		span.SetAttributes(attrBatchCount.Int(len(msgs)))
		if len(msgs) > 0 {
			span.SetAttributes(attrBatchID.Int64(msgs[0].BatchID))
		}
		end(span, err)
	}
}

// StartHandle starts the span of a handler run, a child of the send's span
// when the message carries its context, and hands it to the handler.
func (t *Tracer) StartHandle(ctx context.Context, consumer string, msg pgque.Message) (context.Context, func(string)) {
	if tp := t.messageExtra(msg); tp != nil {
		sent := t.prop.Extract(context.Background(), propagation.MapCarrier{"traceparent": *tp})
		if sc := trace.SpanContextFromContext(sent); sc.IsValid() {
			ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
		}
	}
	attrs := []attribute.KeyValue{attrSystem.String("pgque"), attrDestination.String(msg.Queue), attrConsumer.String(consumer),
		attrOperation.String("process"), attrMessageID.String(strconv.FormatInt(msg.MsgID, 10)), attrType.String(msg.Type),
		attrBatchID.Int64(msg.BatchID)}
	if msg.RetryCount != nil {
		attrs = append(attrs, attrRetry.Int(*msg.RetryCount))
	}
	ctx, span := t.tracer.Start(ctx, "process "+msg.Queue, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attrs...))
	return ctx, func(failure string) {
		if failure != "" {
			span.SetStatus(codes.Error, failure)
		}
		span.End()
	}
}

// StartAck starts the span of a Consumer's acknowledgement of a piece.
func (t *Tracer) StartAck(ctx context.Context, queue, consumer string, n int) func(error) {
	_, span := t.tracer.Start(ctx, "ack "+queue, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attrSystem.String("pgque"), attrDestination.String(queue), attrConsumer.String(consumer),
			attrOperation.String("settle"), attrBatchCount.Int(n)))
	return func(err error) { end(span, err) }
}

func end(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End(trace.WithTimestamp(time.Now()))
}
