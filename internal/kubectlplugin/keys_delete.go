package kubectlplugin

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
	"github.com/codevector/codevector/keys/access"
)

func (cli *keysCLI) newDeleteCommand() *cobra.Command {
	var (
		yes     bool
		timeout time.Duration
		wait    waitOptions
	)
	cmd := &cobra.Command{
		Use:   "delete NAME [--yes] [--timeout 30s] [--confirm-timeout 10s | --no-wait]",
		Short: "Delete a key's APIKey: revoked and expired ones at once, an active one after confirmation",
		Long: `Delete an APIKey: a revoked, expired, failed or never-issued key goes at once.
Deleting an Active key stops it working, as revoking it does, so it asks for
confirmation (type yes) unless --yes, and then waits, as revoke does, until
every running gateway replica refuses the key and says so; a replica that
has not within --confirm-timeout is named, and delete exits non-zero.

The manager's finalizer deletes the key's hash Secret, in the system
namespace, before the APIKey goes (revoked and expired keys have had theirs
deleted already). delete waits for that up to --timeout (0: does not wait).`,
		Args:              exactArgs("NAME"),
		ValidArgsFunction: cli.completeKeyNames(func(k *gatewayv1alpha1.APIKey) bool { return k.DeletionTimestamp == nil }),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cli.delete(cmd.Context(), args[0], yes, timeout, wait)
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "Do not ask for confirmation before deleting an Active key")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "How long to wait for the manager to remove the hash Secret and the APIKey (0: do not wait)")
	_ = cmd.RegisterFlagCompletionFunc("timeout", cobra.NoFileCompletions)
	wait.addFlags(cmd, "deletion")
	return cmd
}

// delete deletes an APIKey: at once when it no longer works (revoked,
// expired, failed) or was never issued, after a confirmation when it is
// Active. The delete is conditional on the UID read, so a key made since
// under the same name is not deleted unasked.
func (cli *keysCLI) delete(ctx context.Context, name string, yes bool, timeout time.Duration, wait waitOptions) error {
	s, key, err := cli.connectToKey(ctx, name)
	if err != nil {
		return err
	}
	ref := fmt.Sprintf("%s/%s (%s)", s.namespace, name, dash(key.Status.Prefix))
	if key.DeletionTimestamp != nil {
		fmt.Fprintf(cli.streams.ErrOut, "APIKey %s is already being deleted: the manager removes its hash Secret, then the APIKey goes.\n", ref)
		return cli.waitDeleted(ctx, s, key, timeout)
	}
	status := keyStatus(key, cli.now())
	confirm := access.DeleteNeedsConfirmation(status)
	if confirm && !yes {
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
	if confirm {
		// The key worked until now: say only what the replicas confirm.
		// The APIKey as marked for deletion carries the deletion's resource
		// version; the manager's finalizer keeps it there a moment.
		marked := &gatewayv1alpha1.APIKey{}
		switch err := s.c.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: key.Name}, marked); {
		case err == nil && marked.UID == key.UID:
			if err := cli.confirmRefused(ctx, s, marked, "deleted", wait); err != nil {
				return err
			}
		case err == nil || apierrors.IsNotFound(err):
			fmt.Fprintln(cli.streams.ErrOut, "Not confirmed: the APIKey was gone before its deletion could be checked with the gateway replicas (each refuses it once its watch delivers the deletion).")
		default:
			return fmt.Errorf("the key is deleted, but whether the gateway replicas refuse it could not be checked: %w", s.explain(err, "get", name))
		}
		fmt.Fprintln(cli.streams.ErrOut, "The manager deletes its hash Secret, then the APIKey goes.")
	} else {
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
