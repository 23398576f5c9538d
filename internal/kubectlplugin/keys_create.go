package kubectlplugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/keys/request"
	"github.com/codevector/codevector/keys/reveal"
	"github.com/codevector/codevector/keys/seal"
)

// errNotIssued: the controller did not issue the key in time.
var errNotIssued = errors.New("the controller did not issue the key")

// createOptions are create's flags.
type createOptions struct {
	expires, displayName, models, budget string
	rpm, tpm                             int64
	concurrency                          int
	timeout                              time.Duration
}

func (cli *keysCLI) newCreateCommand() *cobra.Command {
	o := &createOptions{}
	cmd := &cobra.Command{
		Use:   "create NAME [--expires 30d|YYYY-MM-DD] [--display-name TEXT] [--models GLOBS] [--rpm N] [--tpm N] [--concurrency N] [--budget 50usd/month]",
		Short: "Create a key and print it, once, on stdout",
		Long: `Create an APIKey, wait for the controller to issue it, and print the key,
alone, on stdout. This is the only time the key is shown.

The key is sealed to a key pair made in this process's memory: nobody else,
admins included, can read it.`,
		Example: fmt.Sprintf(`  KEY=$(%[1]s create laptop)
  %[1]s create ci --expires 30d --models 'gpt-4o-mini*' --rpm 60 --budget 5usd/day`, cli.prog),
		Args:              exactArgs("NAME"),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cli.create(cmd.Context(), args[0], o)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.expires, "expires", "", "When the key stops working: a lifetime (30d, 2w, 12h) or a date (2027-01-01, midnight UTC; or an RFC 3339 time). Default: never")
	fs.StringVar(&o.displayName, "display-name", "", "A label shown in the console and in list -o wide")
	fs.StringVar(&o.models, "models", "", "The only models the key may use, comma-separated globs (gpt-4o*,claude-sonnet-*). Default: all")
	fs.Int64Var(&o.rpm, "rpm", 0, "Most requests per minute, across all gateway replicas. Default: no limit")
	fs.Int64Var(&o.tpm, "tpm", 0, "Most tokens (input + output) per minute. Default: no limit")
	fs.IntVar(&o.concurrency, "concurrency", 0, "Most requests in flight at once. Default: no limit")
	fs.StringVar(&o.budget, "budget", "", "Most spend per period: 50usd/month, 5Mtokens/day, 200usd/total. Default: none")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "How long to wait for the controller to issue the key")
	for _, f := range []string{"expires", "display-name", "models", "rpm", "tpm", "concurrency", "budget", "timeout"} {
		_ = cmd.RegisterFlagCompletionFunc(f, cobra.NoFileCompletions)
	}
	return cmd
}

// create makes an APIKey sealed to a key pair made here, in memory, waits
// for the controller to issue it, consumes its reveal Secret and prints the
// key: alone, on stdout.
func (cli *keysCLI) create(ctx context.Context, name string, o *createOptions) error {
	spec := gatewayv1alpha1.APIKeySpec{DisplayName: o.displayName}
	if err := setExpiry(&spec, o.expires, cli.now()); err != nil {
		return err
	}
	if err := setPolicy(&spec, o.models, o.rpm, o.tpm, o.concurrency, o.budget); err != nil {
		return err
	}
	private, err := seal.NewPrivateKey()
	if err != nil {
		return err
	}
	spec.RevealPublicKey = private.PublicKey()
	s, err := cli.connect()
	if err != nil {
		return err
	}
	key := &gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: s.namespace, Name: name}, Spec: spec}
	if err := s.c.Create(ctx, key); err != nil {
		return s.explain(err, "create", name)
	}
	plain, err := s.receive(ctx, name, key.UID, private, o.timeout, nil)
	if err != nil {
		return fmt.Errorf("%w\nThe APIKey %s/%s was created; revoke it with '%s revoke %s -n %s' if you cannot use it", err, s.namespace, name, cli.prog, name, s.namespace)
	}
	fmt.Fprintln(cli.streams.Out, plain.key)
	cli.savedGuidance(s, name, plain)
	return nil
}

// setPolicy fills the per-key policy from create's flags; zero values leave
// a field unset. Namespace guardrails may still default or refuse it.
func setPolicy(spec *gatewayv1alpha1.APIKeySpec, models string, rpm, tpm int64, concurrency int, budget string) error {
	for _, m := range strings.Split(models, ",") {
		if m = strings.TrimSpace(m); m != "" {
			spec.Models = append(spec.Models, gatewayv1alpha1.ModelGlob(m))
		}
	}
	if rpm < 0 || tpm < 0 || concurrency < 0 {
		return errors.New("--rpm, --tpm and --concurrency must be positive (or 0 for no limit)")
	}
	if rpm > 0 || tpm > 0 || concurrency > 0 {
		spec.Limits = &gatewayv1alpha1.Limits{}
		if rpm > 0 {
			spec.Limits.RequestsPerMinute = &rpm
		}
		if tpm > 0 {
			spec.Limits.TokensPerMinute = &tpm
		}
		if concurrency > 0 {
			c := int32(min(concurrency, math.MaxInt32))
			spec.Limits.ConcurrentRequests = &c
		}
	}
	if budget != "" {
		b, err := gatewayv1alpha1.ParseBudget(budget)
		if err != nil {
			return fmt.Errorf("--budget: %w", err)
		}
		spec.Budget = b
	}
	return nil
}

func (cli *keysCLI) newRevealCommand() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "reveal NAME [--timeout 30s]",
		Short: "Print a key you own whose one-time copy nobody has read yet",
		Long: `Print a key you own that nobody has received yet: one applied without a
public key (kubectl apply, GitOps, an admin). The key is sealed to a key pair
made in this process's memory, and printed, alone, on stdout.`,
		Args:              exactArgs("NAME"),
		ValidArgsFunction: cli.completeKeyNames(awaitingReveal),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cli.reveal(cmd.Context(), args[0], timeout)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "How long to wait for the controller to issue the key")
	_ = cmd.RegisterFlagCompletionFunc("timeout", cobra.NoFileCompletions)
	return cmd
}

// reveal prints a key nobody has received yet: one made with kubectl apply
// (which waits, AwaitingRevealKey, for its owner to ask), or one whose
// creator's create was interrupted before the controller issued it. It
// seals the key to a key pair made here, in memory: only this process can
// read it.
func (cli *keysCLI) reveal(ctx context.Context, name string, timeout time.Duration) error {
	s, err := cli.connect()
	if err != nil {
		return err
	}
	// requestReveal's patch is conditional on the APIKey read; a status
	// write in between (the controller's, a gateway's) is retried.
	var (
		private *seal.PrivateKey
		uid     types.UID
	)
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		key, err := s.getKey(ctx, name)
		if err != nil {
			return err
		}
		uid = key.UID
		private, err = s.sealTo(ctx, key)
		return err
	})
	if apierrors.IsConflict(err) {
		return fmt.Errorf("APIKey %s/%s kept changing while asking to reveal it (another reveal?); run the command again", s.namespace, name)
	}
	if err != nil {
		return err
	}
	plain, err := s.receive(ctx, name, uid, private, timeout, nil)
	if err != nil {
		return err
	}
	fmt.Fprintln(cli.streams.Out, plain.key)
	cli.savedGuidance(s, name, plain)
	return nil
}

// sealTo asks the controller to issue key sealed to a key pair made here,
// and returns its private half; or nil if key was issued in plaintext
// (a manager in --reveal-mode=plain). It says why when key cannot be
// revealed to this caller.
func (s *session) sealTo(ctx context.Context, key *gatewayv1alpha1.APIKey) (*seal.PrivateKey, error) {
	switch rs := key.Status.Reveal; {
	case rs != nil && rs.State == gatewayv1alpha1.RevealConsumed:
		return nil, fmt.Errorf("APIKey %s/%s: %w", s.namespace, key.Name, reveal.ErrAlreadyRevealed)
	case rs != nil && rs.State == gatewayv1alpha1.RevealExpired:
		return nil, fmt.Errorf("APIKey %s/%s: %w", s.namespace, key.Name, reveal.ErrRevealExpired)
	case key.Spec.RevealPublicKey != "":
		// Sealed to another request, whose private key only it held. If
		// the sealed copy is gone, that request has read it (the status
		// may not say so yet).
		err := s.c.Get(ctx, types.NamespacedName{Namespace: s.namespace, Name: gatewayv1alpha1.RevealSecretNameOf(key)}, &corev1.Secret{})
		if apierrors.IsNotFound(err) && key.Status.Phase == gatewayv1alpha1.PhaseActive {
			return nil, fmt.Errorf("APIKey %s/%s: %w", s.namespace, key.Name, reveal.ErrAlreadyRevealed)
		}
		return nil, fmt.Errorf("APIKey %s/%s: %w", s.namespace, key.Name, reveal.ErrSealedToAnother)
	case rs != nil && rs.State == gatewayv1alpha1.RevealPending && rs.SecretNamespace != "" && rs.SecretNamespace != key.Namespace:
		// A rotation the console asked for: revealed in the system
		// namespace, sealed to the console's request (spec.rotation.revealIn).
		return nil, fmt.Errorf("APIKey %s/%s: %w; to get a new key here instead, run kubectl apikey rotate %s", s.namespace, key.Name, errRevealedInConsole, key.Name)
	case key.Status.Phase == gatewayv1alpha1.PhaseActive:
		return nil, nil // issued in plaintext
	}
	private, err := seal.NewPrivateKey()
	if err != nil {
		return nil, err
	}
	return private, s.requestReveal(ctx, key, private)
}

// requestReveal sets the APIKey's revealPublicKey, which asks the
// controller to issue the key sealed to private. The API server lets only
// the owner do so, and only once: a second request, by anyone, is refused.
// The patch is conditional on key's resource version; a conflict is
// returned as it is, for the caller to read the key again.
func (s *session) requestReveal(ctx context.Context, key *gatewayv1alpha1.APIKey, private *seal.PrivateKey) error {
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": key.ResourceVersion},
		"spec":     map[string]any{"revealPublicKey": private.PublicKey()},
	})
	if err != nil {
		return err
	}
	err = s.c.Patch(ctx, key, client.RawPatch(types.MergePatchType, patch))
	if err != nil && !apierrors.IsConflict(err) {
		return s.explain(err, "reveal", key.Name)
	}
	return err
}

// revealed is a key just read from its reveal Secret.
type revealed struct {
	key     string
	prefix  string
	expires *metav1.Time
}

// receive waits until the controller has carried out the request of the
// APIKey name (the one with uid: Active, and done when given, as for a
// rotation), then consumes its reveal Secret and opens it with private:
// keys/request's Receive, which the console uses too (GET, then DELETE
// with preconditions, so only one reader ever gets the key).
func (s *session) receive(ctx context.Context, name string, uid types.UID, private *seal.PrivateKey, timeout time.Duration, done func(*gatewayv1alpha1.APIKey) bool) (revealed, error) {
	nn := types.NamespacedName{Namespace: s.namespace, Name: name}
	key, plain, err := request.Receive(ctx, s.c, nn, uid, timeout, done, private)
	var late *request.TimeoutError
	switch {
	case errors.As(err, &late):
		return revealed{}, fmt.Errorf("%w within %v (it is still %s): is the codevector manager running? (kubectl -n %s get pods)", errNotIssued, timeout, late.Phase, gatewayv1alpha1.DefaultSystemNamespace)
	case errors.Is(err, request.ErrGone), errors.Is(err, reveal.ErrNotActive):
		return revealed{}, err
	case errors.Is(err, reveal.ErrAlreadyRevealed), errors.Is(err, reveal.ErrRevealExpired),
		errors.Is(err, reveal.ErrSealedToAnother), errors.Is(err, reveal.ErrReplaced):
		return revealed{}, fmt.Errorf("APIKey %s/%s: %w", s.namespace, name, err)
	case err != nil && key == nil:
		return revealed{}, s.explain(err, "get", name)
	case err != nil:
		return revealed{}, s.explain(err, "reveal", name)
	}
	return revealed{key: plain.Reveal(), prefix: plain.DisplayPrefix(), expires: key.Status.ExpiresAt}, nil
}

// savedGuidance tells the person, on stderr, what they just got.
func (cli *keysCLI) savedGuidance(s *session, name string, k revealed) {
	exp := "never expires"
	if k.expires != nil {
		exp = "expires " + k.expires.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(cli.streams.ErrOut, "API key %s/%s (prefix %s, %s).\n", s.namespace, name, k.prefix, exp)
	fmt.Fprintln(cli.streams.ErrOut, "This is the only time the key is shown: store it now. If you lose it, create a new key and revoke this one.")
	fmt.Fprintln(cli.streams.ErrOut, `Use it as:  -H "Authorization: Bearer <key>"  on requests to the gateway's /gateway/openai/v1/...`)
}

var lifetime = regexp.MustCompile(`^([0-9]+)([dw])$`)

func isDuration(v string) bool {
	_, err := time.ParseDuration(v)
	return err == nil
}

// setExpiry reads --expires: "" (never), a lifetime (30d, 2w, or a Go
// duration such as 12h) that becomes spec.ttl, or a date (YYYY-MM-DD,
// midnight UTC) or RFC 3339 time that becomes spec.expiresAt
// (gatewayv1alpha1.ParseExpiry).
func setExpiry(spec *gatewayv1alpha1.APIKeySpec, v string, now time.Time) error {
	if v == "" || v == "never" {
		return nil
	}
	// A lifetime is stored as written (spec.ttl: 30d), with the API
	// server's own grammar; a date becomes spec.expiresAt.
	if lifetime.MatchString(v) || isDuration(v) {
		l, err := gatewayv1alpha1.NewLifetime(v)
		switch {
		case err != nil:
			return fmt.Errorf("--expires %s: %v", v, err)
		case l.Duration <= 0:
			return fmt.Errorf("--expires %s: a lifetime must be positive", v)
		}
		spec.TTL = l
		return nil
	}
	at, err := gatewayv1alpha1.ParseExpiry(v)
	if err != nil {
		return fmt.Errorf("--expires %q: want a lifetime (30d, 2w, 12h) or a date (2027-01-01, or 2027-01-01T09:00:00Z)", v)
	}
	if !at.Time.After(now) {
		return fmt.Errorf("--expires %s is in the past", v)
	}
	// Stored as written, as spec.ttl is: the API server reads the same
	// grammar (a date is the start of that day, UTC).
	spec.ExpiresAt = at
	return nil
}

func phaseOrPending(k *gatewayv1alpha1.APIKey) gatewayv1alpha1.Phase {
	if k.Status.Phase == "" {
		return gatewayv1alpha1.PhasePending
	}
	return k.Status.Phase
}
