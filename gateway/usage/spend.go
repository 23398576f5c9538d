package usage

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/keyindex"
)

// Spend is what one request, or several, cost a key.
type Spend struct {
	Requests     int64
	InputTokens  int64
	OutputTokens int64
	USD          gatewayv1alpha1.NanoUSD
}

func (s Spend) plus(o Spend) Spend {
	return Spend{s.Requests + o.Requests, s.InputTokens + o.InputTokens, s.OutputTokens + o.OutputTokens, s.USD + o.USD}
}

// SpendRecorder keeps status.usage of keys with a per-key policy
// (docs/design.md, section 12.5): each replica adds up what its requests spent and
// adds its share to the stored figures every interval, with a JSON patch
// that tests the stored value first. A replica whose test fails (another
// wrote in between) re-reads and adds its share to the new figures, so no
// replica overwrites another's share and the counts never go backwards.
// A period that has ended starts again from zero.
type SpendRecorder struct {
	client   client.Client
	index    *keyindex.Index
	interval time.Duration
	clock    clock.WithTicker
	log      *slog.Logger
	writes   *prometheus.CounterVec

	mu      sync.Mutex
	pending map[types.UID]*pendingSpend
}

type pendingSpend struct {
	name        types.NamespacedName
	keyID       string
	periodStart time.Time
	spend       Spend
}

// NewSpendRecorder returns a SpendRecorder that patches through c (which
// must be allowed to patch apikeys/status) every interval.
func NewSpendRecorder(index *keyindex.Index, c client.Client, interval time.Duration, clk clock.WithTicker, log *slog.Logger, reg prometheus.Registerer) *SpendRecorder {
	if clk == nil {
		clk = clock.RealClock{}
	}
	r := &SpendRecorder{
		client: c, index: index, interval: interval, clock: clk, log: log, pending: map[types.UID]*pendingSpend{},
		writes: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{Name: "usage_writes_total", Help: "status.usage writes by outcome: written, retried (another replica wrote first), skipped (key gone), error."}, []string{"outcome"}),
	}
	return r
}

// PeriodOf is the usage period of a key at now: its budget's, or the
// calendar month for a key without a budget.
func PeriodOf(p *keyindex.Policy, created, now time.Time) (start, end time.Time) {
	period := gatewayv1alpha1.BudgetMonth
	if p != nil && p.Budget != nil {
		period = p.Budget.EffectivePeriod()
	}
	return gatewayv1alpha1.PeriodBounds(period, now, created)
}

// StoredSpend is what status.usage holds for the period starting at
// periodStart: zero when it holds an earlier period (or nothing).
func StoredSpend(u *gatewayv1alpha1.Usage, periodStart time.Time) Spend {
	if u == nil || !u.PeriodStart.Time.Equal(periodStart) {
		return Spend{}
	}
	usd, _ := gatewayv1alpha1.ParseUSD(u.USD)
	return Spend{u.Requests, u.InputTokens, u.OutputTokens, usd}
}

// Add records s against e for the period that starts at periodStart.
func (r *SpendRecorder) Add(e *keyindex.Entry, periodStart time.Time, s Spend) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pending[e.UID]
	if p == nil || !p.periodStart.Equal(periodStart) {
		if p != nil && p.periodStart.After(periodStart) {
			return // a request that began in the previous period ended late: it counted there
		}
		// Whatever is left of an earlier period is dropped with it: its
		// figures stop mattering once it ends.
		p = &pendingSpend{name: e.Name, keyID: e.APIKeyFacts.KeyID, periodStart: periodStart}
		r.pending[e.UID] = p
	}
	p.spend = p.spend.plus(s)
}

// Run flushes every interval until ctx ends, then flushes once more.
func (r *SpendRecorder) Run(ctx context.Context) {
	flushEvery(ctx, r.clock, r.interval, r.Flush, r.Flush)
}

// Flush adds every key's pending share to its status.usage.
func (r *SpendRecorder) Flush(ctx context.Context) {
	r.mu.Lock()
	todo := r.pending
	r.pending = map[types.UID]*pendingSpend{}
	r.mu.Unlock()

	for uid, p := range todo {
		outcome, err := r.write(ctx, uid, p)
		r.writes.WithLabelValues(outcome).Inc()
		if err != nil {
			r.log.Warn("Failed to record the usage of API key", "apikey", p.name.String(), "error", err)
			// Keep the share for the next flush rather than lose it.
			r.mu.Lock()
			if cur := r.pending[uid]; cur == nil {
				r.pending[uid] = p
			} else if cur.periodStart.Equal(p.periodStart) {
				cur.spend = cur.spend.plus(p.spend)
			}
			r.mu.Unlock()
		}
	}
}

// write adds p's share to what is stored, retrying when another replica
// wrote first. The first attempt trusts the watch's copy of status.usage;
// later ones read the APIKey.
func (r *SpendRecorder) write(ctx context.Context, uid types.UID, p *pendingSpend) (string, error) {
	var stored *gatewayv1alpha1.Usage
	var budget *gatewayv1alpha1.Budget
	if e := r.index.Lookup(p.keyID); e != nil && e.UID == uid && e.Policy != nil {
		stored, budget = e.Policy.Usage, e.Policy.Budget
	}
	return conditionalStatusPatch(ctx, r.client, p.name, "status.usage", 5,
		func() ([]byte, error) { return usagePatch(stored, budget, p) },
		func(live *gatewayv1alpha1.APIKey) string {
			if live.UID != uid {
				return "skipped" // deleted and made again under the same name
			}
			stored, budget = live.Status.Usage, live.Spec.Budget
			return ""
		})
}

// usagePatch tests that status.usage is still stored (null when absent)
// and replaces it with stored + p's share, or p's share alone when what is
// stored is an earlier period.
func usagePatch(stored *gatewayv1alpha1.Usage, budget *gatewayv1alpha1.Budget, p *pendingSpend) ([]byte, error) {
	total := StoredSpend(stored, p.periodStart).plus(p.spend)
	if stored != nil && stored.PeriodStart.Time.After(p.periodStart) {
		// Another replica already moved on to a later period: this share
		// belongs to one that is over.
		total = StoredSpend(stored, stored.PeriodStart.Time)
		p = &pendingSpend{periodStart: stored.PeriodStart.Time}
	}
	next := &gatewayv1alpha1.Usage{
		PeriodStart:  metav1.NewTime(p.periodStart),
		Requests:     total.Requests,
		InputTokens:  total.InputTokens,
		OutputTokens: total.OutputTokens,
		Summary:      Summary(total, budget),
	}
	if total.USD > 0 {
		next.USD = total.USD.String()
	}
	var expect any
	if stored != nil {
		expect = stored
	}
	return json.Marshal([]map[string]any{
		{"op": "test", "path": "/status/usage", "value": expect},
		{"op": "add", "path": "/status/usage", "value": next},
	})
}

// Summary is the usage as the USAGE column shows it: against the budget
// when there is one ("$3.40 of $50", "1.2M of 5M tokens"), else dollars
// when priced, else tokens.
func Summary(s Spend, b *gatewayv1alpha1.Budget) string {
	tokens := s.InputTokens + s.OutputTokens
	switch {
	case b != nil && b.Tokens != nil:
		return gatewayv1alpha1.CountDisplay(tokens) + " of " + gatewayv1alpha1.CountDisplay(*b.Tokens) + " tokens"
	case b != nil && b.USD != "":
		limit, _ := gatewayv1alpha1.ParseUSD(b.USD)
		return s.USD.Display() + " of " + limit.Display()
	case s.USD > 0:
		return s.USD.Display()
	default:
		return gatewayv1alpha1.CountDisplay(tokens) + " tokens"
	}
}
