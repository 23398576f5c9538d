package policy

import (
	"context"
	"sync"

	"github.com/codevector/codevector/gateway/quota"
)

// Counts is what a Meter counts in: the quota engine (*quota.Engine).
type Counts interface {
	TakeAll(ctx context.Context, hits ...quota.Hit) (bool, []quota.Decision, error)
	Settle(ctx context.Context, c quota.Counter, delta int64) (quota.Decision, error)
	PeerList() (id string, changed <-chan struct{})
}

// Engine is a Meter's quota engine, an input of New that exists before
// the engine does: a replica with peers starts its engine only once it has
// read their shared credential, after it has started listening. Until
// Start, the Meter refuses every request it would count with 503 and
// Retry-After, whatever the failure modes: a replica that is starting is
// not an engine that failed, and nothing may be served uncounted while
// the gateway starts (docs/design.md, section 12.4).
type Engine struct {
	once    sync.Once
	started chan struct{}
	counts  Counts
}

// NewEngine returns an Engine not started yet.
func NewEngine() *Engine { return &Engine{started: make(chan struct{})} }

// Start gives the Meter the engine it counts in from now on. Only the
// first call counts.
func (e *Engine) Start(c Counts) {
	e.once.Do(func() {
		e.counts = c
		close(e.started)
	})
}

// Started is closed once Start has run.
func (e *Engine) Started() <-chan struct{} { return e.started }

// get is the engine, nil before Start.
func (e *Engine) get() Counts {
	select {
	case <-e.started:
		return e.counts
	default:
		return nil
	}
}
