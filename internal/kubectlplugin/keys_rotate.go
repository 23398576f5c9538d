package kubectlplugin

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/retry"

	"github.com/spf13/cobra"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/keys/access"
	"github.com/codevector/codevector/keys/request"
	"github.com/codevector/codevector/keys/seal"
)

func (cli *keysCLI) newRotateCommand() *cobra.Command {
	var (
		grace   time.Duration
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "rotate NAME [--grace 24h]",
		Short: "Give a key you own a new secret; the old one keeps working for --grace",
		Long: `Rotate a key: the same APIKey (same name, same UID, same limits) gets a new
key, printed alone on stdout, once, like create. The old key keeps working on
every gateway until the grace period ends (--grace, default 24h; 0 ends it at
once), so you can move its users over; kubectl apikey get NAME shows when the
old key was last used. Only the key's owner can rotate it.`,
		Args:              exactArgs("NAME"),
		ValidArgsFunction: cli.completeKeyNames(notRevoked),
		RunE: func(cmd *cobra.Command, args []string) error {
			if grace < 0 {
				return errors.New("--grace must be 0 or more")
			}
			return cli.rotate(cmd.Context(), args[0], grace, timeout)
		},
	}
	cmd.Flags().DurationVar(&grace, "grace", 24*time.Hour, "How long the old key keeps working (0: stops at once)")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "How long to wait for the controller to issue the new key")
	_ = cmd.RegisterFlagCompletionFunc("grace", cobra.NoFileCompletions)
	_ = cmd.RegisterFlagCompletionFunc("timeout", cobra.NoFileCompletions)
	return cmd
}

// rotate sets spec.rotation with a public key made here, in memory, waits
// for the controller to carry it out, and prints the new key.
func (cli *keysCLI) rotate(ctx context.Context, name string, grace, timeout time.Duration) error {
	s, err := cli.connect()
	if err != nil {
		return err
	}
	private, err := seal.NewPrivateKey()
	if err != nil {
		return err
	}
	// The patch is conditional on the APIKey read, so that the rotation
	// is of the key found Active. Gateways write a key's status (last use,
	// usage) while it is in use, which fails the condition; read again
	// and retry then, as kubectl's own read-modify-write commands do.
	var (
		key      *gatewayv1alpha1.APIKey
		rotation request.Rotation
	)
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var err error
		if key, err = s.getKey(ctx, name); err != nil {
			return err
		}
		// The rule the console follows too (keys/access); that only the
		// owner may rotate is the API server's to enforce, by the same rule.
		if err := access.Check(access.Actor{}, access.Rotate, access.Key{Owner: key.Spec.Owner, Status: keyStatus(key, cli.now())}); err != nil {
			return fmt.Errorf("APIKey %s/%s: %w", s.namespace, name, err)
		}
		if rotation, err = request.NewRotation(key, cli.now(), grace, private.PublicKey(), gatewayv1alpha1.RevealInKeyNamespace); err != nil {
			return err
		}
		err = s.c.Patch(ctx, key, rotation.Patch)
		if err != nil && !apierrors.IsConflict(err) {
			return s.explain(err, "rotate", name)
		}
		return err // nil, or a conflict, which is retried
	})
	if apierrors.IsConflict(err) {
		return fmt.Errorf("APIKey %s/%s kept changing while asking to rotate it; run the command again", s.namespace, name)
	}
	if err != nil {
		return err
	}
	plain, err := s.receive(ctx, name, key.UID, private, timeout, rotation.Done)
	if err != nil {
		return fmt.Errorf("%w\nThe rotation of %s/%s was requested; the old key keeps working", err, s.namespace, name)
	}
	fmt.Fprintln(cli.streams.Out, plain.key)
	cli.savedGuidance(s, name, plain)
	old := dash(key.Status.Prefix)
	if now, err := s.getKey(ctx, name); err == nil && now.Status.Previous != nil {
		fmt.Fprintf(cli.streams.ErrOut, "The old key %s keeps working until %s (--grace %v).\n", old, now.Status.Previous.ExpiresAt.UTC().Format(time.RFC3339), grace)
	} else {
		fmt.Fprintf(cli.streams.ErrOut, "The old key %s no longer works.\n", old)
	}
	return nil
}
