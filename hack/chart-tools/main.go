// Command chart-tools runs what `helm lint --strict` and `helm template` do,
// with Helm's own Go packages, for the tests of the main module
// (config/chart_test.go) and for people without a helm binary:
//
//	go -C hack/chart-tools run . lint ../../charts/codevector [--set k=v] [-f values.yaml]
//	go -C hack/chart-tools run . template ../../charts/codevector [--include-crds] [--namespace ns] [--set k=v] [-f values.yaml]
//
// template prints the rendered manifests as one YAML stream, each document
// headed by "# Source: <template>", as helm template does. A value the
// chart's values.schema.json refuses makes both exit 1 with the schema's
// message.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	"helm.sh/helm/v4/pkg/strvals"
	"sigs.k8s.io/yaml"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "chart-tools:", err)
		os.Exit(1)
	}
}

const usage = "usage: chart-tools lint|template CHART_DIR [--namespace NS] [--release NAME] [--include-crds] [--set k=v]... [-f values.yaml]..."

// stringsFlag collects a repeated flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

type options struct {
	chart, namespace, release string
	includeCRDs               bool
	sets, files               stringsFlag
}

func run(args []string, out io.Writer) error {
	if len(args) < 2 {
		return errors.New(usage)
	}
	cmd := args[0]
	o := options{chart: args[1]}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.StringVar(&o.namespace, "namespace", "codevector-system", "the release namespace")
	fs.StringVar(&o.release, "release", "codevector", "the release name")
	fs.BoolVar(&o.includeCRDs, "include-crds", false, "print the chart's crds/ first (template)")
	fs.Var(&o.sets, "set", "a value, as helm --set takes it (repeatable)")
	fs.Var(&o.files, "f", "a values file (repeatable)")
	if err := fs.Parse(args[2:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v\n%s", fs.Args(), usage)
	}
	vals, err := o.values()
	if err != nil {
		return err
	}
	switch cmd {
	case "lint":
		return lint(o, vals, out)
	case "template":
		return template(o, vals, out)
	default:
		return errors.New(usage)
	}
}

// values merges the -f files, then the --set values, as helm does.
func (o options) values() (map[string]any, error) {
	vals := map[string]any{}
	for _, f := range o.files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		m := map[string]any{}
		if err := yaml.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		vals = merge(vals, m)
	}
	for _, s := range o.sets {
		if err := strvals.ParseInto(s, vals); err != nil {
			return nil, fmt.Errorf("--set %s: %w", s, err)
		}
	}
	return vals, nil
}

// lint is helm lint --strict: any warning fails.
func lint(o options, vals map[string]any, out io.Writer) error {
	l := action.NewLint()
	l.Strict = true
	l.Namespace = o.namespace
	res := l.Run([]string{o.chart}, vals)
	for _, m := range res.Messages {
		fmt.Fprintln(out, m.Error())
	}
	if len(res.Errors) > 0 {
		return fmt.Errorf("%s: %d chart(s) linted, %d failed: %w", o.chart, res.TotalChartsLinted, len(res.Errors), errors.Join(res.Errors...))
	}
	fmt.Fprintf(out, "%s: %d chart(s) linted, 0 failed\n", o.chart, res.TotalChartsLinted)
	return nil
}

// template is helm template: the chart rendered client-side with the
// default capabilities, documents in Helm's install order of templates
// (by path), NOTES.txt and partials left out.
func template(o options, vals map[string]any, out io.Writer) error {
	ch, err := loader.Load(o.chart)
	if err != nil {
		return err
	}
	top, err := chartutil.ToRenderValuesWithSchemaValidation(ch, vals, common.ReleaseOptions{
		Name: o.release, Namespace: o.namespace, Revision: 1, IsInstall: true,
	}, nil, false)
	if err != nil {
		return err
	}
	rendered, err := engine.Render(ch, top)
	if err != nil {
		return err
	}
	if o.includeCRDs {
		for _, crd := range ch.CRDObjects() {
			fmt.Fprintf(out, "---\n# Source: %s\n%s\n", path.Join(ch.Name(), crd.Name), strings.TrimSpace(string(crd.File.Data)))
		}
	}
	names := make([]string, 0, len(rendered))
	for name := range rendered {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		base := path.Base(name)
		if strings.HasSuffix(name, "NOTES.txt") || strings.HasPrefix(base, "_") {
			continue
		}
		for _, doc := range splitDocs(rendered[name]) {
			fmt.Fprintf(out, "---\n# Source: %s\n%s\n", name, doc)
		}
	}
	return nil
}

// splitDocs splits a rendered template into its non-empty YAML documents.
func splitDocs(s string) []string {
	var docs []string
	for _, d := range strings.Split("\n"+s, "\n---") {
		d = strings.TrimSpace(d)
		if d == "" || isCommentsOnly(d) {
			continue
		}
		docs = append(docs, d)
	}
	return docs
}

func isCommentsOnly(d string) bool {
	for _, line := range strings.Split(d, "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

// merge sets over base, recursively: a later values file wins.
func merge(base, over map[string]any) map[string]any {
	for k, v := range over {
		if vm, ok := v.(map[string]any); ok {
			if bm, ok := base[k].(map[string]any); ok {
				base[k] = merge(bm, vm)
				continue
			}
		}
		base[k] = v
	}
	return base
}
