package kubectlplugin

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/client-go/util/jsonpath"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

// outputOptions are the output flags of list and get, as kubectl spells
// them: -o json, yaml, name, jsonpath=, go-template= (cli-runtime's
// printers, the ones kubectl uses), and the tables: the default, wide and
// custom-columns=; --no-headers.
type outputOptions struct {
	print     *genericclioptions.PrintFlags
	noHeaders bool
}

func newOutputOptions() *outputOptions {
	return &outputOptions{print: genericclioptions.NewPrintFlags("").WithTypeSetter(gatewayv1alpha1.NewScheme())}
}

func (o *outputOptions) addFlags(cmd *cobra.Command) {
	o.print.AddFlags(cmd)
	cmd.Flags().Lookup("output").Usage = fmt.Sprintf("Output format. One of: (%s).", strings.Join(o.formats(), ", "))
	cmd.Flags().BoolVar(&o.noHeaders, "no-headers", false, "When using the default, wide or custom-columns output format, don't print headers (default print headers).")
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return o.formats(), cobra.ShellCompDirectiveNoFileComp
	})
	_ = cmd.RegisterFlagCompletionFunc("template", cobra.NoFileCompletions)
}

// formats are the -o values: the tables, then cli-runtime's.
func (o *outputOptions) formats() []string {
	return append([]string{"wide", "custom-columns", "custom-columns-file"}, o.print.AllowedFormats()...)
}

// tableLayout is which table a keyPrinter prints, if any.
type tableLayout int

const (
	noTable     tableLayout = iota // a cli-runtime printer
	keysTable                      // the console's columns
	wideTable                      // and BUDGET, OWNER, DISPLAY NAME
	customTable                    // custom-columns=
)

// keyPrinter prints APIKeys, as the API server sent them, in one format.
type keyPrinter struct {
	layout          tableLayout
	columns         []customColumn           // customTable
	resource        printers.ResourcePrinter // noTable
	showManaged     bool                     // --show-managed-fields
	noHeaders       bool                     // --no-headers
	namespaceColumn bool                     // -A: keys from every namespace
	now             time.Time                // for LAST USED and STATUS
}

// printer checks -o and makes its printer: before anything is sent to the
// API server, so a typo costs no request.
func (o *outputOptions) printer(now time.Time, allNamespaces bool) (*keyPrinter, error) {
	p := &keyPrinter{noHeaders: o.noHeaders, namespaceColumn: allNamespaces, now: now}
	if o.print.JSONYamlPrintFlags != nil {
		p.showManaged = o.print.JSONYamlPrintFlags.ShowManagedFields
	}
	format := *o.print.OutputFormat
	var err error
	switch {
	case format == "":
		p.layout = keysTable
	case format == "wide":
		p.layout = wideTable
	case strings.HasPrefix(format, "custom-columns="):
		p.layout = customTable
		p.columns, err = parseCustomColumns(strings.TrimPrefix(format, "custom-columns="))
	case strings.HasPrefix(format, "custom-columns-file="):
		p.layout = customTable
		p.columns, err = readCustomColumnsFile(strings.TrimPrefix(format, "custom-columns-file="))
	case format == "custom-columns" || format == "custom-columns-file":
		err = fmt.Errorf("-o %s needs a value: -o %s=NAME:.metadata.name,OWNER:.spec.owner", format, format)
	default:
		p.resource, err = o.print.ToPrinter()
		if genericclioptions.IsNoCompatiblePrinterError(err) {
			err = fmt.Errorf("unknown output format %q: want one of %s", format, strings.Join(o.formats(), ", "))
		}
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// table tells whether the format is a table, for which an empty list is
// a sentence on stderr rather than an empty document.
func (p *keyPrinter) table() bool { return p.layout != noTable }

// printList prints keys as a list: a table, or (as kubectl does) a v1 List
// of the objects.
func (p *keyPrinter) printList(keys []unstructured.Unstructured, w io.Writer) error {
	switch p.layout {
	case keysTable, wideTable:
		return p.printKeysTable(keys, w)
	case customTable:
		return p.printCustomColumns(keys, w)
	}
	list := &unstructured.UnstructuredList{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "List",
		"metadata":   map[string]any{"resourceVersion": ""},
	}}
	for i := range keys {
		list.Items = append(list.Items, *p.forOutput(&keys[i]))
	}
	return p.resource.PrintObj(list, w)
}

// printOne prints one key: the object itself, or a table of one row.
func (p *keyPrinter) printOne(key *unstructured.Unstructured, w io.Writer) error {
	if p.table() {
		return p.printList([]unstructured.Unstructured{*key}, w)
	}
	return p.resource.PrintObj(p.forOutput(key), w)
}

// forOutput is the key as the machine formats print it: with its kind, and
// without managedFields unless --show-managed-fields (kubectl's default).
func (p *keyPrinter) forOutput(key *unstructured.Unstructured) *unstructured.Unstructured {
	key = key.DeepCopy()
	if key.GetKind() == "" {
		key.SetGroupVersionKind(gatewayv1alpha1.GroupVersion.WithKind("APIKey"))
	}
	if !p.showManaged {
		key.SetManagedFields(nil)
	}
	return key
}

// printKeysTable prints the console's columns: NAME PREFIX STATUS LAST
// USED EXPIRES USAGE, and with -o wide BUDGET OWNER DISPLAY NAME.
func (p *keyPrinter) printKeysTable(items []unstructured.Unstructured, w io.Writer) error {
	tw := printers.GetNewTabWriter(w)
	var header []string
	if p.namespaceColumn {
		header = append(header, "NAMESPACE")
	}
	header = append(header, "NAME", "PREFIX", "STATUS", "LAST USED", "EXPIRES", "USAGE")
	if p.layout == wideTable {
		header = append(header, "BUDGET", "OWNER", "DISPLAY NAME")
	}
	if !p.noHeaders {
		fmt.Fprintln(tw, strings.Join(header, "\t"))
	}
	for i := range items {
		k, err := typedKey(&items[i])
		if err != nil {
			return err
		}
		var row []string
		if p.namespaceColumn {
			row = append(row, k.Namespace)
		}
		row = append(row, k.Name, dash(k.Status.Prefix), string(keyStatus(k, p.now)), lastUsed(k, p.now), expires(k, p.now), usageSummary(k))
		if p.layout == wideTable {
			row = append(row, dash(k.Status.Budget), dash(k.Spec.Owner), dash(k.Spec.DisplayName))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// typedKey converts what the API server sent into an APIKey.
func typedKey(u *unstructured.Unstructured) (*gatewayv1alpha1.APIKey, error) {
	k := &gatewayv1alpha1.APIKey{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, k); err != nil {
		return nil, fmt.Errorf("reading APIKey %s/%s: %w", u.GetNamespace(), u.GetName(), err)
	}
	return k, nil
}

// customColumn is one column of -o custom-columns: a header and a JSONPath.
type customColumn struct {
	header string
	path   *jsonpath.JSONPath
}

// parseCustomColumns reads kubectl's custom-columns spec,
// HEADER:.json.path,HEADER:{.json.path},...
func parseCustomColumns(spec string) ([]customColumn, error) {
	if spec == "" {
		return nil, fmt.Errorf("-o custom-columns= needs columns: NAME:.metadata.name,OWNER:.spec.owner")
	}
	var cols []customColumn
	for _, part := range strings.Split(spec, ",") {
		header, path, ok := strings.Cut(part, ":")
		if !ok || header == "" {
			return nil, fmt.Errorf("-o custom-columns: %q is not HEADER:JSONPATH", part)
		}
		col, err := newCustomColumn(header, path)
		if err != nil {
			return nil, err
		}
		cols = append(cols, col)
	}
	return cols, nil
}

// readCustomColumnsFile reads kubectl's custom-columns-file: a line of
// headers, then a line of as many JSONPaths.
func readCustomColumnsFile(name string) ([]customColumn, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("-o custom-columns-file: %w", err)
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	var lines [][]string
	for sc.Scan() && len(lines) < 2 {
		if fields := strings.Fields(sc.Text()); len(fields) > 0 {
			lines = append(lines, fields)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("-o custom-columns-file: %w", err)
	}
	if len(lines) != 2 || len(lines[0]) != len(lines[1]) {
		return nil, fmt.Errorf("-o custom-columns-file %s: want a line of headers and a line of as many JSONPaths", name)
	}
	var cols []customColumn
	for i, header := range lines[0] {
		col, err := newCustomColumn(header, lines[1][i])
		if err != nil {
			return nil, err
		}
		cols = append(cols, col)
	}
	return cols, nil
}

func newCustomColumn(header, path string) (customColumn, error) {
	expr, err := relaxedJSONPath(path)
	if err != nil {
		return customColumn{}, fmt.Errorf("-o custom-columns %s: %w", header, err)
	}
	jp := jsonpath.New(header).AllowMissingKeys(true)
	if err := jp.Parse(expr); err != nil {
		return customColumn{}, fmt.Errorf("-o custom-columns %s: %w", header, err)
	}
	return customColumn{header: header, path: jp}, nil
}

// printCustomColumns prints one row per key, each cell its column's JSONPath
// results joined by commas, or <none>: as kubectl does.
func (p *keyPrinter) printCustomColumns(items []unstructured.Unstructured, w io.Writer) error {
	tw := printers.GetNewTabWriter(w)
	if !p.noHeaders {
		headers := make([]string, len(p.columns))
		for i, c := range p.columns {
			headers[i] = c.header
		}
		fmt.Fprintln(tw, strings.Join(headers, "\t"))
	}
	for i := range items {
		cells := make([]string, len(p.columns))
		for j, c := range p.columns {
			results, err := c.path.FindResults(items[i].Object)
			if err != nil {
				return fmt.Errorf("-o custom-columns %s: %w", c.header, err)
			}
			var values []string
			for _, r := range results {
				for _, v := range r {
					values = append(values, fmt.Sprint(v.Interface()))
				}
			}
			cells[j] = strings.Join(values, ",")
			if len(values) == 0 {
				cells[j] = "<none>"
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

var relaxedPath = regexp.MustCompile(`^\{\.?([^{}]+)\}$|^\.?([^{}]+)$`)

// relaxedJSONPath turns the field specs kubectl accepts for custom-columns
// and --sort-by (.a.b, a.b, {.a.b}, {a.b}) into a JSONPath template {.a.b}.
func relaxedJSONPath(path string) (string, error) {
	m := relaxedPath.FindStringSubmatch(path)
	if m == nil {
		return "", fmt.Errorf("unexpected path %q, expected a 'name1.name2' or '.name1.name2' or '{name1.name2}' or '{.name1.name2}'", path)
	}
	field := m[1]
	if field == "" {
		field = m[2]
	}
	return "{." + field + "}", nil
}

// usageSummary is status.usage.summary ("$3.40 of $50"), or "-".
func usageSummary(k *gatewayv1alpha1.APIKey) string {
	if k.Status.Usage == nil {
		return "-"
	}
	return dash(k.Status.Usage.Summary)
}
