package kubectlplugin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/replicas"
	"github.com/codevector/codevector/keys/access"
)

// revokeOptions are revoke's flags.
type revokeOptions struct {
	yes bool
	waitOptions
}

func (cli *keysCLI) newRevokeCommand() *cobra.Command {
	var o revokeOptions
	cmd := &cobra.Command{
		Use:   "revoke NAME [--yes] [--confirm-timeout 10s | --no-wait]",
		Short: "Revoke a key, and wait until every gateway replica refuses it (cannot be undone)",
		Long: `Revoke a key (cannot be undone), then wait until every running gateway
replica refuses it: each replica publishes, in a Lease in the system
namespace, how far its key index has applied the API server's changes, and
revoke returns once every replica whose Lease is live has applied the
revocation. It then says so ("refused by 3 of 3 gateway replicas in 14ms").
If a replica has not within --confirm-timeout (default 10s), revoke names
it, says when it was last heard from, and exits non-zero: the key is
revoked, but requests to that replica may still be accepted until its watch
catches up.

--no-wait (or --confirm-timeout 0) returns as soon as the API server has
the revocation, and says that nothing was confirmed.

Reading the Leases needs get, list and watch on leases in the system
namespace (the Role codevector-gateway-replicas-viewer, bound to every
authenticated user by config/rbac). Asks for confirmation (type yes)
unless --yes.`,
		Args:              exactArgs("NAME"),
		ValidArgsFunction: cli.completeKeyNames(notRevoked),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cli.revoke(cmd.Context(), args[0], o)
		},
	}
	cmd.Flags().BoolVarP(&o.yes, "yes", "y", false, "Do not ask for confirmation")
	o.addFlags(cmd, "revocation")
	return cmd
}

// errNotConfirmed: the key is revoked, but some gateway replica is not
// known to refuse it.
var errNotConfirmed = errors.New("revocation not confirmed by every gateway replica")

// revoke sets spec.revoked after a confirmation, then waits until every
// live gateway replica refuses the key (gateway/replicas).
func (cli *keysCLI) revoke(ctx context.Context, name string, o revokeOptions) error {
	if o.confirmTimeout < 0 {
		return fmt.Errorf("--confirm-timeout %v: want 0 (do not wait) or a positive duration", o.confirmTimeout)
	}
	s, key, err := cli.connectToKey(ctx, name)
	if err != nil {
		return err
	}
	// The rule the console follows too (keys/access); who may revoke is
	// the API server's to say, by the same rule.
	status := keyStatus(key, cli.now())
	switch err := access.Check(access.Actor{}, access.Revoke, access.Key{Owner: key.Spec.Owner, Status: status}); {
	case key.Spec.Revoked || status == gatewayv1alpha1.PhaseRevoked:
		fmt.Fprintf(cli.streams.ErrOut, "APIKey %s/%s is already revoked.\n", s.namespace, name)
	case errors.Is(err, access.ErrNoLongerWorks):
		fmt.Fprintf(cli.streams.ErrOut, "APIKey %s/%s is %s: it no longer works, so there is nothing to revoke (delete it with 'kubectl apikey delete %s').\n", s.namespace, name, status, name)
	default:
		if !o.yes {
			fmt.Fprintf(cli.streams.ErrOut, "Revoke %s/%s (%s)? Every gateway replica will refuse requests with this key. This cannot be undone.\nType yes to revoke: ", s.namespace, name, dash(key.Status.Prefix))
			answer, _ := bufio.NewReader(cli.streams.In).ReadString('\n')
			switch strings.ToLower(strings.TrimSpace(answer)) {
			case "y", "yes":
			case "":
				return errors.New("not revoked: no confirmation (pass --yes to revoke without asking)")
			default:
				return errors.New("not revoked")
			}
		}
		base := key.DeepCopy()
		key.Spec.Revoked = true
		if err := s.c.Patch(ctx, key, client.MergeFrom(base)); err != nil {
			return s.explain(err, "revoke", name)
		}
		fmt.Fprintf(cli.streams.Out, "apikey %q revoked\n", name)
	}
	return cli.confirmRefused(ctx, s, key, "revoked", o.waitOptions)
}

// waitOptions are the flags of the commands that wait until every gateway
// replica refuses a key (revoke, delete).
type waitOptions struct {
	noWait          bool
	confirmTimeout  time.Duration
	systemNamespace string
}

func (o *waitOptions) addFlags(cmd *cobra.Command, what string) {
	cmd.Flags().DurationVar(&o.confirmTimeout, "confirm-timeout", replicas.DefaultConfirmTimeout, "How long to wait until every gateway replica refuses the key; 0 does not wait (as --no-wait)")
	cmd.Flags().BoolVar(&o.noWait, "no-wait", false, "Return once the API server has the "+what+", without confirming that any gateway replica refuses the key")
	cmd.Flags().StringVar(&o.systemNamespace, "system-namespace", gatewayv1alpha1.DefaultSystemNamespace, "Namespace of the gateway replicas' Leases (the gateway's --system-namespace)")
}

// confirmRefused waits until every live gateway replica has applied key as
// read after the change (its resource version) and says what it found:
// what happened is "revoked" or "deleted". It returns errNotConfirmed when
// a replica has not within the bound.
func (cli *keysCLI) confirmRefused(ctx context.Context, s *session, key *gatewayv1alpha1.APIKey, what string, o waitOptions) error {
	if o.confirmTimeout < 0 {
		return fmt.Errorf("--confirm-timeout %v: want 0 (do not wait) or a positive duration", o.confirmTimeout)
	}
	if o.noWait || o.confirmTimeout == 0 {
		fmt.Fprintf(cli.streams.ErrOut, "Not confirmed (--no-wait): each gateway replica refuses the key once its watch of the API server delivers the change, usually within milliseconds; nothing here checked that it has.\n")
		return nil
	}
	// The change's own resource version (or a later one): a replica that
	// has applied it refuses the key.
	rv, err := strconv.ParseUint(key.ResourceVersion, 10, 64)
	if err != nil {
		return fmt.Errorf("the API server returned resource version %q for APIKey %s/%s, which is not a number: cannot confirm with the gateways that the key is %s (Kubernetes 1.35 or later compares resource versions)", key.ResourceVersion, key.Namespace, key.Name, what)
	}
	res, err := replicas.Confirm(ctx, s.c, o.systemNamespace, key.Namespace, rv, o.confirmTimeout)
	if err != nil {
		return fmt.Errorf("the key is %s, but whether the gateway replicas refuse it could not be checked: %w", what, s.explain(err, "confirm", key.Name))
	}
	fmt.Fprintln(cli.streams.ErrOut, res.Summary(what))
	if !res.Confirmed() {
		return errNotConfirmed
	}
	return nil
}
