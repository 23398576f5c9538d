package controllers

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
)

// eventLog collects the events of one pass so they are recorded after the
// status write that they describe.
type eventLog struct{ events []pendingEvent }

type pendingEvent struct{ kind, reason, note string }

func (l *eventLog) normal(reason, format string, args ...any) {
	l.events = append(l.events, pendingEvent{corev1.EventTypeNormal, reason, fmt.Sprintf(format, args...)})
}

func (l *eventLog) warning(reason, format string, args ...any) {
	l.events = append(l.events, pendingEvent{corev1.EventTypeWarning, reason, fmt.Sprintf(format, args...)})
}

func (l *eventLog) flush(rec events.EventRecorder, regarding runtime.Object) {
	if rec == nil {
		return
	}
	for _, e := range l.events {
		// The action names what the controller did, as events.k8s.io asks.
		rec.Eventf(regarding, nil, e.kind, e.reason, "Reconcile", "%s", e.note)
	}
	l.events = nil
}
