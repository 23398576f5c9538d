package controllers

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// The queue's delays run on its clock: a requeue an hour away is ready
// when the clock has moved an hour, not before, and a retry's backoff
// likewise; items added without a delay keep their priority.
func TestClockQueueWaitsOnItsClock(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Now())
	q := newClockQueue("test", clk, workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](time.Second, time.Minute))
	defer q.ShutDown()
	req := func(name string) reconcile.Request {
		return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "team", Name: name}}
	}

	q.AddAfter(req("expiring"), time.Hour)
	q.AddRateLimited(req("failing"))
	clk.Step(time.Hour - time.Second)
	if n := q.Len(); n != 1 {
		t.Fatalf("%d items ready a second before the hour, want 1 (the retry after its 1s backoff)", n)
	}
	if got, _ := q.Get(); got != req("failing") {
		t.Fatalf("got %v first, want the retry", got)
	}
	q.Done(req("failing"))
	clk.Step(time.Second)
	if n := q.Len(); n != 1 {
		t.Fatalf("%d items ready at the hour, want 1", n)
	}
	if got, _ := q.Get(); got != req("expiring") {
		t.Fatalf("got %v at the hour, want the requeued key", got)
	}
	q.Done(req("expiring"))

	q.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(-100)}, req("initial-list"))
	q.Add(req("new"))
	if got, _, _ := q.GetWithPriority(); got != req("new") {
		t.Errorf("got %v first, want the new key ahead of the initial list", got)
	}
}
