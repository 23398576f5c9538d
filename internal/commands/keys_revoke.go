package commands

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// revoke sets spec.revoked after a confirmation. Gateways reject the key
// as soon as their watch sees the change.
func (cli *keysCLI) revoke(ctx context.Context, args []string) error {
	var kf kubeFlags
	fs := cli.flagSet("revoke", "NAME [--yes]", &kf)
	var yes bool
	fs.BoolVar(&yes, "yes", false, "Do not ask for confirmation")
	fs.BoolVar(&yes, "y", false, "Shorthand for --yes")
	pos, err := parseArgs(fs, args, "NAME")
	if err != nil {
		return err
	}
	name := pos[0]
	s, err := kf.connect(cli.prog)
	if err != nil {
		return err
	}
	key, err := s.getKey(ctx, name)
	if err != nil {
		return err
	}
	if key.Spec.Revoked {
		fmt.Fprintf(cli.errOut, "APIKey %s/%s is already revoked.\n", s.namespace, name)
		return nil
	}
	if !yes {
		fmt.Fprintf(cli.errOut, "Revoke %s/%s (%s)? Requests with this key will be rejected immediately. This cannot be undone.\nType yes to revoke: ", s.namespace, name, dash(key.Status.Prefix))
		answer, _ := bufio.NewReader(cli.in).ReadString('\n')
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
	fmt.Fprintf(cli.out, "apikey %q revoked\n", name)
	fmt.Fprintln(cli.errOut, "Gateways now answer 401 to requests with this key.")
	return nil
}
