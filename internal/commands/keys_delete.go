package commands

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

func (cli *keysCLI) newDeleteCommand() *cobra.Command {
	var (
		yes     bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "delete NAME [--yes] [--timeout 30s]",
		Short: "Delete a key's APIKey: revoked and expired ones at once, an active one after confirmation",
		Long: `Delete an APIKey: a revoked, expired, failed or never-issued key goes at once.
Deleting an Active key stops it working, as revoking it does (gateways answer
401 as soon as they see the deletion), so it asks for confirmation (type yes)
unless --yes.

The manager's finalizer deletes the key's hash Secret, in the system
namespace, before the APIKey goes (revoked and expired keys have had theirs
deleted already). delete waits for that up to --timeout (0: does not wait).`,
		Args:              exactArgs("NAME"),
		ValidArgsFunction: cli.completeKeyNames(func(k *gatewayv1alpha1.APIKey) bool { return k.DeletionTimestamp == nil }),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cli.delete(cmd.Context(), args[0], yes, timeout)
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "Do not ask for confirmation before deleting an Active key")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "How long to wait for the manager to remove the hash Secret and the APIKey (0: do not wait)")
	_ = cmd.RegisterFlagCompletionFunc("timeout", cobra.NoFileCompletions)
	return cmd
}

// delete deletes an APIKey: at once when it no longer works (revoked,
// expired, failed) or was never issued, after a confirmation when it is
// Active. The delete is conditional on the UID read, so a key made since
// under the same name is not deleted unasked.
func (cli *keysCLI) delete(ctx context.Context, name string, yes bool, timeout time.Duration) error {
	s, err := cli.connect()
	if err != nil {
		return err
	}
	key, err := s.getKey(ctx, name)
	if err != nil {
		return err
	}
	ref := fmt.Sprintf("%s/%s (%s)", s.namespace, name, dash(key.Status.Prefix))
	if key.DeletionTimestamp != nil {
		fmt.Fprintf(cli.streams.ErrOut, "APIKey %s is already being deleted: the manager removes its hash Secret, then the APIKey goes.\n", ref)
		return cli.waitDeleted(ctx, s, key, timeout)
	}
	status := keyStatus(key, cli.now())
	if status == gatewayv1alpha1.PhaseActive && !yes {
		fmt.Fprintf(cli.streams.ErrOut, "APIKey %s is Active. Deleting it stops it working: requests with it will be rejected (401) as soon as the gateways see the deletion. This cannot be undone.\nType yes to delete: ", ref)
		answer, _ := bufio.NewReader(cli.streams.In).ReadString('\n')
		switch strings.ToLower(strings.TrimSpace(answer)) {
		case "y", "yes":
		case "":
			return fmt.Errorf("not deleted: %s is Active and nobody confirmed (pass --yes to delete it without asking, or revoke it first)", ref)
		default:
			return errors.New("not deleted")
		}
	}
	if err := s.c.Delete(ctx, key, client.Preconditions{UID: &key.UID}); err != nil {
		if apierrors.IsConflict(err) {
			return fmt.Errorf("not deleted: APIKey %s/%s was replaced by another key of the same name since it was read; run delete again to delete the new one", s.namespace, name)
		}
		return s.explain(err, "delete", name)
	}
	fmt.Fprintf(cli.streams.Out, "apikey %q deleted\n", name)
	switch status {
	case gatewayv1alpha1.PhaseActive:
		fmt.Fprintln(cli.streams.ErrOut, "Gateways now answer 401 to requests with this key. The manager deletes its hash Secret, then the APIKey goes.")
	default:
		fmt.Fprintf(cli.streams.ErrOut, "The key was %s. The manager makes sure no hash Secret of it is left (its finalizer), then the APIKey goes.\n", status)
	}
	return cli.waitDeleted(ctx, s, key, timeout)
}

// waitDeleted waits up to timeout for the APIKey to be gone: for the
// manager's finalizer to have deleted the hash Secret.
func (cli *keysCLI) waitDeleted(ctx context.Context, s *session, key *gatewayv1alpha1.APIKey, timeout time.Duration) error {
	if timeout <= 0 {
		return nil
	}
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		live := &gatewayv1alpha1.APIKey{}
		last = s.c.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: key.Name}, live)
		switch {
		case apierrors.IsNotFound(last):
			return true, nil
		case last == nil && live.UID != key.UID:
			return true, nil // gone, and another made since
		}
		return false, nil
	})
	if err == nil {
		return nil
	}
	if last != nil && !apierrors.IsNotFound(last) {
		return s.explain(last, "get", key.Name)
	}
	return fmt.Errorf("the APIKey %s/%s is marked for deletion (no gateway accepts it), but it was still there after %s: the manager removes its hash Secret and then its finalizer; is the manager running?", key.Namespace, key.Name, timeout)
}
