package commands

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/humantime"
)

// list prints the console's table: NAME PREFIX STATUS LAST USED EXPIRES,
// newest first.
func (cli *keysCLI) list(ctx context.Context, args []string) error {
	var kf kubeFlags
	fs := cli.flagSet("list", "[-A] [-o wide]", &kf)
	var all bool
	fs.BoolVar(&all, "all-namespaces", false, "List the keys of every namespace you may read")
	fs.BoolVar(&all, "A", false, "Shorthand for --all-namespaces")
	output := fs.String("o", "", "Output format: wide adds OWNER and DISPLAY NAME")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	if *output != "" && *output != "wide" {
		return fmt.Errorf("-o %s: the only output format is wide", *output)
	}
	s, err := kf.connect(cli.prog)
	if err != nil {
		return err
	}
	list := &gatewayv1alpha1.APIKeyList{}
	var opts []client.ListOption
	if !all {
		opts = append(opts, client.InNamespace(s.namespace))
	}
	if err := s.c.List(ctx, list, opts...); err != nil {
		return s.explain(err, "list", "")
	}
	if len(list.Items) == 0 {
		if all {
			fmt.Fprintln(cli.errOut, "No API keys found.")
		} else {
			fmt.Fprintf(cli.errOut, "No API keys found in namespace %s.\n", s.namespace)
		}
		return nil
	}
	sort.SliceStable(list.Items, func(i, j int) bool {
		a, b := list.Items[i].CreationTimestamp, list.Items[j].CreationTimestamp
		if !a.Equal(&b) {
			return b.Before(&a)
		}
		return list.Items[i].Name < list.Items[j].Name
	})

	now := cli.now()
	tw := tabwriter.NewWriter(cli.out, 0, 4, 3, ' ', 0)
	var header []string
	if all {
		header = append(header, "NAMESPACE")
	}
	header = append(header, "NAME", "PREFIX", "STATUS", "LAST USED", "EXPIRES")
	if *output == "wide" {
		header = append(header, "OWNER", "DISPLAY NAME")
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for i := range list.Items {
		k := &list.Items[i]
		var row []string
		if all {
			row = append(row, k.Namespace)
		}
		row = append(row, k.Name, dash(k.Status.Prefix), string(keyStatus(k, now)), lastUsed(k, now), expires(k))
		if *output == "wide" {
			row = append(row, dash(k.Spec.Owner), dash(k.Spec.DisplayName))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

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
	key := &gatewayv1alpha1.APIKey{}
	if err := s.c.Get(ctx, types.NamespacedName{Namespace: s.namespace, Name: name}, key); err != nil {
		return s.explain(err, "get", name)
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

// keyStatus is what the console shows (see APIKey.EffectiveStatus).
func keyStatus(k *gatewayv1alpha1.APIKey, now time.Time) gatewayv1alpha1.Phase {
	return k.EffectiveStatus(now)
}

// lastUsed is "Never" or a relative time, as in the console.
func lastUsed(k *gatewayv1alpha1.APIKey, now time.Time) string {
	if k.Status.LastUsedAt == nil {
		return "Never"
	}
	return humantime.Ago(now, k.Status.LastUsedAt.Time)
}

// expires is the expiry date (UTC), or "-".
func expires(k *gatewayv1alpha1.APIKey) string {
	exp := k.ResolvedExpiry()
	if exp == nil {
		return "-"
	}
	return exp.UTC().Format(time.DateOnly)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
