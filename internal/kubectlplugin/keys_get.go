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

// describeKey prints what is known about k, as kubectl describe would:
// who holds it and its life so far, what it may use and has used, then
// its conditions.
func describeKey(w io.Writer, k *gatewayv1alpha1.APIKey, now time.Time) error {
	tw := printers.GetNewTabWriter(w)
	d := keyDescription{w: tw, now: now}
	d.lifecycle(k)
	d.policyAndUsage(k)
	if len(k.Status.Conditions) == 0 {
		d.line("Conditions", "-")
		return tw.Flush()
	}
	d.line("Conditions", "")
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

// keyDescription writes describeKey's "Label:<tab>value" lines.
type keyDescription struct {
	w   io.Writer // a tab writer: the values line up
	now time.Time
}

func (d keyDescription) line(label, value string) { fmt.Fprintf(d.w, "%s:\t%s\n", label, value) }

// when is t in UTC and relative to now: "2026-01-02T03:04:05Z (in 3 days)".
func (d keyDescription) when(t time.Time) string {
	return fmt.Sprintf("%s (%s)", t.UTC().Format(time.RFC3339), humantime.Relative(d.now, t))
}

// lifecycle: the key's names, owner and status, and when it was created,
// expires, was last used, rotated, revoked or deleted.
func (d keyDescription) lifecycle(k *gatewayv1alpha1.APIKey) {
	d.line("Name", k.Name)
	d.line("Namespace", k.Namespace)
	d.line("Display name", dash(k.Spec.DisplayName))
	d.line("Owner", dash(k.Spec.Owner))
	d.line("Prefix", dash(k.Status.Prefix))
	d.line("Status", string(keyStatus(k, d.now)))
	d.line("Created", d.when(k.CreationTimestamp.Time))
	if exp := k.ResolvedExpiry(); exp == nil {
		d.line("Expires", "Never")
	} else {
		d.line("Expires", d.when(exp.Time))
	}
	if k.Status.LastUsedAt == nil {
		d.line("Last used", "Never")
	} else {
		d.line("Last used", d.when(k.Status.LastUsedAt.Time))
	}
	if p := k.Status.Previous; p != nil && d.now.Before(p.ExpiresAt.Time) {
		used := "never used since the rotation"
		if p.LastUsedAt != nil {
			used = "last used " + humantime.Ago(d.now, p.LastUsedAt.Time)
		}
		d.line("Old key", fmt.Sprintf("%s still works until %s; %s", p.Prefix, d.when(p.ExpiresAt.Time), used))
	}
	if k.Status.RevokedAt != nil {
		d.line("Revoked", d.when(k.Status.RevokedAt.Time))
	} else if k.Spec.Revoked {
		d.line("Revoked", "yes (the controller has not recorded when yet)")
	}
	if k.DeletionTimestamp != nil {
		d.line("Deleted", d.when(k.DeletionTimestamp.Time))
	}
}

// policyAndUsage: the models, limits and budget the key may use, what it
// used in the current period, and where its reveal stands.
func (d keyDescription) policyAndUsage(k *gatewayv1alpha1.APIKey) {
	d.line("Models", modelsSummary(k.Spec.Models))
	d.line("Limits", limitsSummary(k.Spec.Limits))
	budget := k.Status.Budget
	if budget == "" && k.Spec.Budget != nil {
		budget = "set (the controller has not summarised it yet)"
	}
	d.line("Budget", dash(budget))
	if u := k.Status.Usage; u != nil {
		d.line("Usage", fmt.Sprintf("%s since %s", dash(u.Summary), u.PeriodStart.UTC().Format(time.RFC3339)))
		detail := fmt.Sprintf("%d requests, %d input tokens, %d output tokens", u.Requests, u.InputTokens, u.OutputTokens)
		if u.USD != "" {
			detail += ", $" + u.USD
		}
		// A line of its own under the value, with no label of its own.
		fmt.Fprintf(d.w, "\t%s\n", detail)
	} else {
		d.line("Usage", "-")
	}
	if r := k.Status.Reveal; r != nil {
		reveal := string(r.State)
		if r.State == gatewayv1alpha1.RevealPending && r.ExpiresAt != nil {
			reveal += ", until " + r.ExpiresAt.UTC().Format(time.RFC3339)
		}
		d.line("Reveal", reveal)
	} else if k.Spec.RevealPublicKey == "" && k.Status.Phase != gatewayv1alpha1.PhaseActive {
		d.line("Reveal", "waiting for its owner to ask (reveal NAME)")
	}
}

// modelsSummary is "gpt-4o*, claude-*", or "all" for a key without a list.
func modelsSummary(models []gatewayv1alpha1.ModelGlob) string {
	if len(models) == 0 {
		return "all"
	}
	names := make([]string, len(models))
	for i, m := range models {
		names[i] = string(m)
	}
	return strings.Join(names, ", ")
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
