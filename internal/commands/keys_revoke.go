package commands

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func (cli *keysCLI) newRevokeCommand() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "revoke NAME [--yes]",
		Short: "Revoke a key: requests with it get 401 at once (cannot be undone)",
		Long: `Revoke a key: gateways answer 401 to requests with it as soon as their watch
sees the change. Revocation cannot be undone. Asks for confirmation (type yes)
unless --yes.`,
		Args:              exactArgs("NAME"),
		ValidArgsFunction: cli.completeKeyNames(notRevoked),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cli.revoke(cmd.Context(), args[0], yes)
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "Do not ask for confirmation")
	return cmd
}

// revoke sets spec.revoked after a confirmation. Gateways reject the key
// as soon as their watch sees the change.
func (cli *keysCLI) revoke(ctx context.Context, name string, yes bool) error {
	s, err := cli.connect()
	if err != nil {
		return err
	}
	key, err := s.getKey(ctx, name)
	if err != nil {
		return err
	}
	if key.Spec.Revoked {
		fmt.Fprintf(cli.streams.ErrOut, "APIKey %s/%s is already revoked.\n", s.namespace, name)
		return nil
	}
	if !yes {
		fmt.Fprintf(cli.streams.ErrOut, "Revoke %s/%s (%s)? Requests with this key will be rejected immediately. This cannot be undone.\nType yes to revoke: ", s.namespace, name, dash(key.Status.Prefix))
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
	fmt.Fprintln(cli.streams.ErrOut, "Gateways now answer 401 to requests with this key.")
	return nil
}
