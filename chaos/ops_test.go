package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/testenv"
)

// cliUser is the identity of the CLI's kubeconfig: keys are created as
// it, so that it owns them and may rotate them.
const cliUser = "chaos-admin"

// randomPolicy is a key's policy as the CLI's flags and as the checker's
// Policy: none, a per-minute limit of requests or of tokens, a
// concurrency limit, a token or a dollar budget over the key's life, or a
// model allowlist only.
func randomPolicy(rng *rand.Rand) (flags []string, p *Policy) {
	switch x := rng.IntN(100); {
	case x < 25:
		return nil, nil
	case x < 43:
		rpm := int64(20 + rng.IntN(70))
		return []string{"--rpm", fmt.Sprint(rpm)}, &Policy{RequestsPerMinute: rpm}
	case x < 55:
		// A request reserves about 70 tokens (its prompt's bytes / 4 and
		// max_tokens 16) and is billed about 20: a hot key reaches these.
		tpm := int64(300 + rng.IntN(2700))
		return []string{"--tpm", fmt.Sprint(tpm)}, &Policy{TokensPerMinute: tpm}
	case x < 65:
		n := int64(1 + rng.IntN(4))
		return []string{"--concurrency", fmt.Sprint(n)}, &Policy{ConcurrentRequests: n}
	case x < 77:
		tokens := int64(200 + rng.IntN(1800))
		return []string{"--budget", fmt.Sprintf("%dtokens/total", tokens)}, &Policy{BudgetTokens: tokens}
	case x < 87:
		cents := int64(20 + rng.IntN(180))
		return []string{"--budget", fmt.Sprintf("%d.%02dusd/total", cents/100, cents%100)}, &Policy{BudgetTokens: cents * 10_000_000 / nanoUSDPerToken}
	default:
		return []string{"--models", model + "*"}, &Policy{}
	}
}

// applyPolicyFlags sets on spec what randomPolicy's flags say, for keys
// created through the API rather than the CLI.
func applyPolicyFlags(spec *gatewayv1alpha1.APIKeySpec, flags []string) error {
	limits := func() *gatewayv1alpha1.Limits {
		if spec.Limits == nil {
			spec.Limits = &gatewayv1alpha1.Limits{}
		}
		return spec.Limits
	}
	for i := 0; i+1 < len(flags); i += 2 {
		v := flags[i+1]
		var n int64
		if flags[i] == "--rpm" || flags[i] == "--tpm" || flags[i] == "--concurrency" {
			if _, err := fmt.Sscan(v, &n); err != nil {
				return fmt.Errorf("%s %q: %w", flags[i], v, err)
			}
		}
		switch flags[i] {
		case "--rpm":
			limits().RequestsPerMinute = &n
		case "--tpm":
			limits().TokensPerMinute = &n
		case "--concurrency":
			c := int32(n)
			limits().ConcurrentRequests = &c
		case "--budget":
			b, err := gatewayv1alpha1.ParseBudget(v)
			if err != nil {
				return err
			}
			spec.Budget = b
		case "--models":
			spec.Models = []gatewayv1alpha1.ModelGlob{gatewayv1alpha1.ModelGlob(v)}
		}
	}
	return nil
}

// createInitialKeys issues cfg.keys keys before the load starts, through
// the API as the CLI's user (sealed, revealed once), eight at a time.
func (r *run) createInitialKeys(rng *rand.Rand) {
	t := r.t
	owner, err := r.c.env.ClientAs(cliUser, "system:masters")
	if err != nil {
		t.Fatal(err)
	}
	type plan struct {
		name  string
		flags []string
		p     *Policy
	}
	plans := make([]plan, r.cfg.keys)
	for i := range plans {
		plans[i].name = fmt.Sprintf("init-%03d", i)
		plans[i].flags, plans[i].p = randomPolicy(rng)
	}
	keys := make([]*poolKey, len(plans))
	errs := make([]error, len(plans))
	next := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range next {
				keys[i], errs[i] = r.issue(owner, plans[i].name, plans[i].flags, plans[i].p)
			}
		})
	}
	for i := range plans {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, k := range keys {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		k.hot = i < max(1, len(keys)/10)
		r.pool.add(k)
	}
}

// issue creates one key through the API and reveals it, recording the
// creation.
func (r *run) issue(c client.Client, name string, flags []string, p *Policy) (*poolKey, error) {
	ctx := context.Background()
	start := time.Now()
	ak := &gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: r.c.ns, Name: name}}
	testenv.SealToTests(ak)
	if err := applyPolicyFlags(&ak.Spec, flags); err != nil {
		return nil, err
	}
	if err := c.Create(ctx, ak); err != nil {
		return nil, fmt.Errorf("creating APIKey %s: %w", name, err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for ak.Status.Phase != gatewayv1alpha1.PhaseActive {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("APIKey %s not Active within 2m (phase %q)", name, ak.Status.Phase)
		}
		time.Sleep(100 * time.Millisecond)
		if err := c.Get(ctx, client.ObjectKeyFromObject(ak), ak); err != nil {
			return nil, err
		}
	}
	plain, err := testenv.Reveal(ctx, c, ak)
	if err != nil {
		return nil, fmt.Errorf("revealing APIKey %s: %w", name, err)
	}
	r.h.add(Record{Type: TypeOp, Op: OpCreate, Key: name, Start: start, End: time.Now(), OK: true, Policy: p})
	pol := Policy{}
	if p != nil {
		pol = *p
	}
	return &poolKey{name: name, secrets: []string{plain.Reveal()}, policy: pol}, nil
}

// operations runs the users' and admins' operations, one at a time, a
// second or three apart, until deadline.
func (r *run) operations(rng *rand.Rand, deadline time.Time) {
	for time.Now().Before(deadline) {
		time.Sleep(time.Duration(1000+rng.IntN(2000)) * time.Millisecond)
		switch x := rng.IntN(100); {
		case x < 25:
			r.opCreate(rng)
		case x < 45:
			r.opRetire(rng, OpRevoke)
		case x < 55:
			r.opRetire(rng, OpDelete)
		case x < 80:
			r.opRotate(rng)
		default:
			r.opPolicy(rng)
		}
	}
}

// opCreate: `kubectl apikey create` with a random policy, a fifth of them
// expiring within a minute or two.
func (r *run) opCreate(rng *rand.Rand) {
	name := fmt.Sprintf("op-%04d", r.seq.Add(1))
	flags, p := randomPolicy(rng)
	var expires time.Time
	if rng.IntN(5) == 0 {
		expires = time.Now().Add(time.Duration(30+rng.IntN(60)) * time.Second).UTC().Truncate(time.Second)
		flags = append(flags, "--expires", expires.Format(time.RFC3339))
	}
	start := time.Now()
	stdout, stderr, ok := r.c.cli(time.Minute, append([]string{"create", name}, flags...)...)
	key := strings.TrimSpace(stdout)
	ok = ok && strings.HasPrefix(key, "cvk_")
	r.h.add(Record{Type: TypeOp, Op: OpCreate, Key: name, Start: start, End: time.Now(), OK: ok, Policy: p, ExpiresAt: expires, Detail: lastLine(stderr)})
	if !ok {
		return
	}
	k := &poolKey{name: name, secrets: []string{key}, expiresAt: expires}
	if p != nil {
		k.policy = *p
	}
	r.pool.add(k)
}

// opRetire: `kubectl apikey revoke` or `delete`, which return once every
// live replica confirms it refuses the key.
func (r *run) opRetire(rng *rand.Rand, op Op) {
	k := r.pool.choose(rng, time.Now(), func(*poolKey) bool { return true })
	if k == nil {
		return
	}
	start := time.Now()
	r.pool.retire(k, start)
	_, stderr, ok := r.c.cli(time.Minute, string(op), k.name, "--yes", "--confirm-timeout", "10s")
	r.h.add(Record{Type: TypeOp, Op: op, Key: k.name, Start: start, End: time.Now(), OK: ok, Detail: lastLine(stderr)})
	r.pool.update(k, func(*poolKey) {})
}

// opRotate: `kubectl apikey rotate --grace` of 8 to 25 s; the grace end
// is what the controller wrote in status.previous.
func (r *run) opRotate(rng *rand.Rand) {
	k := r.pool.choose(rng, time.Now(), func(*poolKey) bool { return true })
	if k == nil {
		return
	}
	grace := time.Duration(8+rng.IntN(18)) * time.Second
	start := time.Now()
	stdout, stderr, ok := r.c.cli(time.Minute, "rotate", k.name, "--grace", grace.String())
	key := strings.TrimSpace(stdout)
	ok = ok && strings.HasPrefix(key, "cvk_")
	var graceEnd time.Time
	if ok {
		ak := &gatewayv1alpha1.APIKey{}
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if err := r.c.kube().Get(context.Background(), types.NamespacedName{Namespace: r.c.ns, Name: k.name}, ak); err == nil {
				if ak.Status.Previous != nil {
					graceEnd = ak.Status.Previous.ExpiresAt.Time
				}
				break
			}
		}
		ok = !graceEnd.IsZero()
	}
	end := time.Now()
	r.pool.update(k, func(k *poolKey) {
		if !ok {
			// Which secret works is unknown now: the key leaves the load.
			k.retiredAt = start
			return
		}
		k.secrets = append(k.secrets, key)
		k.graceEnd = graceEnd
	})
	r.h.add(Record{Type: TypeOp, Op: OpRotate, Key: k.name, Gen: len(k.secrets) - 1, Start: start, End: end, OK: ok, ExpiresAt: graceEnd, Detail: lastLine(stderr)})
}

// opPolicy: an admin gives a key a new per-minute limit (keys with a
// budget keep it; the checker holds a key to the largest it ever had).
func (r *run) opPolicy(rng *rand.Rand) {
	k := r.pool.choose(rng, time.Now(), func(k *poolKey) bool { return true })
	if k == nil {
		return
	}
	rpm := int64(20 + rng.IntN(100))
	p := k.policy
	p.RequestsPerMinute = rpm
	start := time.Now()
	patch := fmt.Appendf(nil, `{"spec":{"limits":{"requestsPerMinute":%d}}}`, rpm)
	ak := &gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: r.c.ns, Name: k.name}}
	err := r.c.kube().Patch(context.Background(), ak, client.RawPatch(types.MergePatchType, patch))
	r.h.add(Record{Type: TypeOp, Op: OpPolicy, Key: k.name, Start: start, End: time.Now(), OK: err == nil, Policy: &p, Detail: errText(err)})
	r.pool.update(k, func(k *poolKey) {
		if err == nil {
			k.policy = p
		}
	})
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
