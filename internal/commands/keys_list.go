package commands

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

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
