package kubectlplugin

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/printers"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/humantime"
)

func (cli *keysCLI) newGetCommand() *cobra.Command {
	output := newOutputOptions()
	cmd := &cobra.Command{
		Use:   "get NAME [-o wide|json|yaml|name|jsonpath=...|custom-columns=...]",
		Short: "Show one key in full: status, conditions, usage (never the key itself)",
		Long: `Show one key in full: its owner, status, expiry, last use, limits, budget,
usage in the current period and conditions. Nothing here is the key: the
API server keeps only its prefix and, elsewhere, a one-way hash.`,
		Args:              exactArgs("NAME"),
		ValidArgsFunction: cli.completeKeyNames(anyKey),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cli.get(cmd.Context(), args[0], output)
		},
	}
	output.addFlags(cmd)
	return cmd
}

// get prints one key: in full (the default), or in an -o format.
func (cli *keysCLI) get(ctx context.Context, name string, output *outputOptions) error {
	describe := *output.print.OutputFormat == ""
	var p *keyPrinter
	if !describe {
		var err error
		if p, err = output.printer(cli.now(), false); err != nil {
			return err
		}
	}
	s, err := cli.connect()
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gatewayv1alpha1.GroupVersion.WithKind("APIKey"))
	if err := s.c.Get(ctx, types.NamespacedName{Namespace: s.namespace, Name: name}, u); err != nil {
		return s.explain(err, "get", name)
	}
	if !describe {
		return p.printOne(u, cli.streams.Out)
	}
	k, err := typedKey(u)
	if err != nil {
		return err
	}
	return describeKey(cli.streams.Out, k, cli.now())
}

// describeKey prints what is known about k, as kubectl describe would.
func describeKey(w io.Writer, k *gatewayv1alpha1.APIKey, now time.Time) error {
	tw := printers.GetNewTabWriter(w)
	line := func(label, value string) { fmt.Fprintf(tw, "%s:\t%s\n", label, value) }
	when := func(t time.Time) string {
		return fmt.Sprintf("%s (%s)", t.UTC().Format(time.RFC3339), humantime.Relative(now, t))
	}

	line("Name", k.Name)
	line("Namespace", k.Namespace)
	line("Display name", dash(k.Spec.DisplayName))
	line("Owner", dash(k.Spec.Owner))
	line("Prefix", dash(k.Status.Prefix))
	line("Status", string(keyStatus(k, now)))
	line("Created", when(k.CreationTimestamp.Time))
	switch exp := k.ResolvedExpiry(); {
	case exp == nil:
		line("Expires", "Never")
	default:
		line("Expires", when(exp.Time))
	}
	if k.Status.LastUsedAt == nil {
		line("Last used", "Never")
	} else {
		line("Last used", when(k.Status.LastUsedAt.Time))
	}
	if p := k.Status.Previous; p != nil && now.Before(p.ExpiresAt.Time) {
		used := "never used since the rotation"
		if p.LastUsedAt != nil {
			used = "last used " + humantime.Ago(now, p.LastUsedAt.Time)
		}
		line("Old key", fmt.Sprintf("%s still works until %s; %s", p.Prefix, when(p.ExpiresAt.Time), used))
	}
	if k.Status.RevokedAt != nil {
		line("Revoked", when(k.Status.RevokedAt.Time))
	} else if k.Spec.Revoked {
		line("Revoked", "yes (the controller has not recorded when yet)")
	}
	if k.DeletionTimestamp != nil {
		line("Deleted", when(k.DeletionTimestamp.Time))
	}

	models := "all"
	if len(k.Spec.Models) > 0 {
		names := make([]string, len(k.Spec.Models))
		for i, m := range k.Spec.Models {
			names[i] = string(m)
		}
		models = strings.Join(names, ", ")
	}
	line("Models", models)
	line("Limits", limitsSummary(k.Spec.Limits))
	budget := k.Status.Budget
	if budget == "" && k.Spec.Budget != nil {
		budget = "set (the controller has not summarised it yet)"
	}
	line("Budget", dash(budget))
	if u := k.Status.Usage; u != nil {
		line("Usage", fmt.Sprintf("%s since %s", dash(u.Summary), u.PeriodStart.UTC().Format(time.RFC3339)))
		detail := fmt.Sprintf("%d requests, %d input tokens, %d output tokens", u.Requests, u.InputTokens, u.OutputTokens)
		if u.USD != "" {
			detail += ", $" + u.USD
		}
		// A line of its own under the value, with no label of its own.
		fmt.Fprintf(tw, "\t%s\n", detail)
	} else {
		line("Usage", "-")
	}
	if r := k.Status.Reveal; r != nil {
		reveal := string(r.State)
		if r.State == gatewayv1alpha1.RevealPending && r.ExpiresAt != nil {
			reveal += ", until " + r.ExpiresAt.UTC().Format(time.RFC3339)
		}
		line("Reveal", reveal)
	} else if k.Spec.RevealPublicKey == "" && k.Status.Phase != gatewayv1alpha1.PhaseActive {
		line("Reveal", "waiting for its owner to ask (reveal NAME)")
	}
	if len(k.Status.Conditions) == 0 {
		line("Conditions", "-")
		return tw.Flush()
	}
	line("Conditions", "")
	if err := tw.Flush(); err != nil {
		return err
	}
	// A table of its own, so its columns do not stretch the labels'.
	tw = printers.GetNewTabWriter(w)
	fmt.Fprintln(tw, "  TYPE\tSTATUS\tREASON\tSINCE\tMESSAGE")
	for _, c := range k.Status.Conditions {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", c.Type, c.Status, dash(c.Reason), humantime.Ago(now, c.LastTransitionTime.Time), c.Message)
	}
	return tw.Flush()
}

// limitsSummary is "60 requests/min, 100000 tokens/min, 4 at once", or "-".
func limitsSummary(l *gatewayv1alpha1.Limits) string {
	if l == nil {
		return "-"
	}
	var parts []string
	if l.RequestsPerMinute != nil {
		parts = append(parts, fmt.Sprintf("%d requests/min", *l.RequestsPerMinute))
	}
	if l.TokensPerMinute != nil {
		parts = append(parts, fmt.Sprintf("%d tokens/min", *l.TokensPerMinute))
	}
	if l.ConcurrentRequests != nil {
		parts = append(parts, fmt.Sprintf("%d at once", *l.ConcurrentRequests))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}
