package controllers

import (
	"time"

	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// clockQueue is controller-runtime's priority queue with its delays (a
// RequeueAfter, a retry's backoff) measured by our clock instead of real
// time, which is all the priority queue itself can wait on.
// SetupWithManager uses it for any clock but clock.RealClock{}: a test
// that steps a fake clock past a key's expiry then wakes the key through
// the requeue the controller scheduled for it, as the deadline would, and
// the queue otherwise behaves as in production (new keys ahead of the
// initial list, duplicates merged).
type clockQueue struct {
	priorityqueue.PriorityQueue[reconcile.Request]
	clock       clock.WithDelayedExecution
	rateLimiter workqueue.TypedRateLimiter[reconcile.Request]
}

func newClockQueue(name string, c clock.WithDelayedExecution, rl workqueue.TypedRateLimiter[reconcile.Request]) *clockQueue {
	return &clockQueue{
		PriorityQueue: priorityqueue.New(name, func(o *priorityqueue.Opts[reconcile.Request]) { o.RateLimiter = rl }),
		clock:         c,
		rateLimiter:   rl,
	}
}

// AddWithOpts adds items at once, or, with a delay, when the clock has
// moved past it. A delayed item added again before then is added twice,
// which the priority queue merges into one pass if it has not started.
func (q *clockQueue) AddWithOpts(o priorityqueue.AddOpts, items ...reconcile.Request) {
	now := priorityqueue.AddOpts{Priority: o.Priority}
	for _, item := range items {
		after := o.After
		if o.RateLimited {
			if backoff := q.rateLimiter.When(item); after == 0 || backoff < after {
				after = backoff
			}
		}
		if after <= 0 {
			q.PriorityQueue.AddWithOpts(now, item)
			continue
		}
		q.clock.AfterFunc(after, func() { q.PriorityQueue.AddWithOpts(now, item) })
	}
}

func (q *clockQueue) Add(item reconcile.Request) {
	q.AddWithOpts(priorityqueue.AddOpts{}, item)
}

func (q *clockQueue) AddAfter(item reconcile.Request, after time.Duration) {
	q.AddWithOpts(priorityqueue.AddOpts{After: after}, item)
}

func (q *clockQueue) AddRateLimited(item reconcile.Request) {
	q.AddWithOpts(priorityqueue.AddOpts{RateLimited: true}, item)
}
