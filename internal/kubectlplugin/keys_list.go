package kubectlplugin

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/util/jsonpath"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/humantime"
)

// listOptions are list's flags.
type listOptions struct {
	output        *outputOptions
	allNamespaces bool
	selector      string
	fieldSelector string
	owner         string
	sortBy        string
}

func (cli *keysCLI) newListCommand() *cobra.Command {
	o := &listOptions{output: newOutputOptions()}
	cmd := &cobra.Command{
		Use:     "list [-A] [-o wide|json|yaml|name|jsonpath=...|custom-columns=...] [-l SELECTOR] [--owner USER] [--sort-by FIELD]",
		Aliases: []string{"ls"},
		Short:   "List keys: NAME PREFIX STATUS LAST USED EXPIRES USAGE",
		Long: `List keys, newest first: the console's columns. A revocation or an expiry
counts at once, before the controller records it. -o wide adds BUDGET, OWNER
and DISPLAY NAME; the other formats are kubectl's.`,
		Example: fmt.Sprintf(`  %[1]s list -A -o wide
  %[1]s list --owner alice@example.com --sort-by .status.lastUsedAt
  %[1]s list -o jsonpath='{.items[*].status.prefix}'
  %[1]s list -o custom-columns=NAME:.metadata.name,USED:.status.lastUsedAt --no-headers`, cli.prog),
		Args:              exactArgs(),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cli.list(cmd.Context(), o)
		},
	}
	fs := cmd.Flags()
	fs.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "List the keys of every namespace you may read")
	fs.StringVarP(&o.selector, "selector", "l", "", "Label selector to filter on (-l team=ml,env!=prod)")
	fs.StringVar(&o.fieldSelector, "field-selector", "", "Field selector to filter on, as the API server supports it for APIKeys (metadata.name, metadata.namespace, spec.owner)")
	fs.StringVar(&o.owner, "owner", "", "Only the keys of this owner (the field selector spec.owner=USER)")
	fs.StringVar(&o.sortBy, "sort-by", "", "Sort by this field, a JSONPath (.metadata.name, {.status.lastUsedAt}), instead of newest first")
	o.output.addFlags(cmd)
	for _, f := range []string{"selector", "field-selector", "owner"} {
		_ = cmd.RegisterFlagCompletionFunc(f, cobra.NoFileCompletions)
	}
	_ = cmd.RegisterFlagCompletionFunc("sort-by", func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return []string{".metadata.name", ".metadata.creationTimestamp", ".status.lastUsedAt", ".status.expiresAt", ".spec.owner", ".status.phase"}, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

// list prints the keys of the namespace (or of all, -A) in the format -o
// asks for.
func (cli *keysCLI) list(ctx context.Context, o *listOptions) error {
	// Everything the flags can get wrong is checked before connecting.
	p, err := o.output.printer(cli.now(), o.allNamespaces)
	if err != nil {
		return err
	}
	opts := []client.ListOption{}
	if o.selector != "" {
		sel, err := labels.Parse(o.selector)
		if err != nil {
			return fmt.Errorf("-l %s: %w", o.selector, err)
		}
		opts = append(opts, client.MatchingLabelsSelector{Selector: sel})
	}
	var fieldSel []fields.Selector
	if o.fieldSelector != "" {
		sel, err := fields.ParseSelector(o.fieldSelector)
		if err != nil {
			return fmt.Errorf("--field-selector %s: %w", o.fieldSelector, err)
		}
		fieldSel = append(fieldSel, sel)
	}
	if o.owner != "" {
		fieldSel = append(fieldSel, fields.OneTermEqualSelector("spec.owner", o.owner))
	}
	if len(fieldSel) > 0 {
		opts = append(opts, client.MatchingFieldsSelector{Selector: fields.AndSelectors(fieldSel...)})
	}
	var sortPath *jsonpath.JSONPath
	if o.sortBy != "" {
		if sortPath, err = parseSortBy(o.sortBy); err != nil {
			return err
		}
	}

	s, err := cli.connect()
	if err != nil {
		return err
	}
	if !o.allNamespaces {
		opts = append(opts, client.InNamespace(s.namespace))
	}
	// Unstructured: -o json and yaml print what the API server sent, field
	// for field, as kubectl get does.
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(gatewayv1alpha1.GroupVersion.WithKind("APIKeyList"))
	if err := s.c.List(ctx, list, opts...); err != nil {
		return s.explain(err, "list", "")
	}
	if err := sortKeys(list.Items, sortPath); err != nil {
		return err
	}
	if len(list.Items) == 0 && p.table() {
		switch {
		case o.allNamespaces:
			fmt.Fprintln(cli.streams.ErrOut, "No API keys found.")
		default:
			fmt.Fprintf(cli.streams.ErrOut, "No API keys found in namespace %s.\n", s.namespace)
		}
		return nil
	}
	return p.printList(list.Items, cli.streams.Out)
}

// parseSortBy reads --sort-by as kubectl does: a field spec, .a.b or {.a.b}.
func parseSortBy(field string) (*jsonpath.JSONPath, error) {
	expr, err := relaxedJSONPath(field)
	if err != nil {
		return nil, fmt.Errorf("--sort-by: %w", err)
	}
	jp := jsonpath.New("sort-by").AllowMissingKeys(true)
	if err := jp.Parse(expr); err != nil {
		return nil, fmt.Errorf("--sort-by %s: %w", field, err)
	}
	return jp, nil
}

// sortKeys orders keys newest first (then by namespace and name), as the
// console does; or, with a --sort-by path, by that field, ascending, keys
// without it first (as kubectl sorts: numbers by value, strings in natural
// order, so key2 comes before key10).
func sortKeys(items []unstructured.Unstructured, path *jsonpath.JSONPath) error {
	if path == nil {
		slices.SortStableFunc(items, func(a, b unstructured.Unstructured) int {
			ta, tb := a.GetCreationTimestamp(), b.GetCreationTimestamp()
			return cmp.Or(tb.Compare(ta.Time), cmp.Compare(a.GetNamespace(), b.GetNamespace()), cmp.Compare(a.GetName(), b.GetName()))
		})
		return nil
	}
	type keyed struct {
		item  unstructured.Unstructured
		value any // nil when the key has no such field
	}
	ks := make([]keyed, len(items))
	for i := range items {
		results, err := path.FindResults(items[i].Object)
		if err != nil {
			return fmt.Errorf("--sort-by: %w", err)
		}
		ks[i].item = items[i]
		if len(results) > 0 && len(results[0]) > 0 {
			ks[i].value = results[0][0].Interface()
		}
	}
	slices.SortStableFunc(ks, func(a, b keyed) int { return compareValues(a.value, b.value) })
	for i := range ks {
		items[i] = ks[i].item
	}
	return nil
}

// compareValues orders JSON values: absent first, numbers by value,
// strings in natural order, anything else by its printed form.
func compareValues(a, b any) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	if fa, ok := number(a); ok {
		if fb, ok := number(b); ok {
			return cmp.Compare(fa, fb)
		}
	}
	return naturalCompare(fmt.Sprint(a), fmt.Sprint(b))
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case float64:
		return n, true
	case int:
		return float64(n), true
	}
	return 0, false
}

// naturalCompare compares strings with runs of digits compared as numbers.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, _ := strconv.ParseUint(a[:da], 10, 64)
			nb, _ := strconv.ParseUint(b[:db], 10, 64)
			if c := cmp.Compare(na, nb); c != 0 {
				return c
			}
			if c := cmp.Compare(da, db); c != 0 { // 01 after 1
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digitRun(s string) int {
	n := 0
	for n < len(s) && n < 18 && unicode.IsDigit(rune(s[n])) {
		n++
	}
	return n
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

// expiringSoon is how close an expiry must be for list to flag it, as the
// controller's first expiry warning (7 days before) and the console do.
const expiringSoon = 7 * 24 * time.Hour

// expires is the expiry date (UTC), or "-"; an active key expiring within
// a week also gets the time and how soon ("2026-12-07 20:12 UTC (in 1
// minute)"), so it stands out in a long list and a key about to stop
// working says when.
func expires(k *gatewayv1alpha1.APIKey, now time.Time) string {
	exp := k.ResolvedExpiry()
	if exp == nil {
		return "-"
	}
	if k.EffectiveStatus(now) == gatewayv1alpha1.PhaseActive && exp.Sub(now) < expiringSoon {
		return exp.UTC().Format("2006-01-02 15:04 UTC") + " (" + humantime.Until(now, exp.Time) + ")"
	}
	return exp.UTC().Format(time.DateOnly)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
