package replicas

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Replica is what a waiter knows of one replica.
type Replica struct {
	Name string `json:"name"`
	// LastHeard is when its Lease was last renewed.
	LastHeard time.Time `json:"lastHeard"`
	// Refuses: its index has applied the change waited for.
	Refuses bool `json:"refuses"`
}

// Result is the outcome of Confirm.
type Result struct {
	// Replicas are the live replicas (Leases renewed within
	// LeaseDuration), by name.
	Replicas []Replica
	// Lapsed are replicas whose Lease has not been renewed within
	// LeaseDuration (heard from in the last lapsedShown): not counted.
	Lapsed []Replica
	// Elapsed is how long the wait took; Timeout is the bound it had.
	Elapsed, Timeout time.Duration
	// At is when the result was taken, for "last heard" (the waiter's
	// clock).
	At time.Time
}

// lapsedShown: a Lapsed replica heard from longer ago than this is not
// mentioned (a replica killed outright whose Lease has no Pod to go with).
const lapsedShown = 10 * time.Minute

// Confirmed reports whether every live replica refuses the key.
func (r Result) Confirmed() bool {
	for _, rep := range r.Replicas {
		if !rep.Refuses {
			return false
		}
	}
	return true
}

// Refusing counts the live replicas that refuse the key.
func (r Result) Refusing() int {
	n := 0
	for _, rep := range r.Replicas {
		if rep.Refuses {
			n++
		}
	}
	return n
}

// Summary says what is true, in a sentence or two: how many replicas
// refuse the key, in how long, and which do not.
func (r Result) Summary(what string) string {
	var b strings.Builder
	switch {
	case len(r.Replicas) == 0:
		fmt.Fprintf(&b, "%s. No gateway replica is running (none has renewed its Lease within %v), so none can accept the key.", capitalize(what), LeaseDuration)
	case r.Confirmed():
		fmt.Fprintf(&b, "%s: refused by %d of %d gateway %s in %v.", capitalize(what), len(r.Replicas), len(r.Replicas), plural(len(r.Replicas), "replica"), roundDuration(r.Elapsed))
	default:
		var late []string
		for _, rep := range r.Replicas {
			if !rep.Refuses {
				late = append(late, fmt.Sprintf("%s (last heard %s ago)", rep.Name, ago(r.At, rep.LastHeard)))
			}
		}
		verb := "has not, and may still accept the key until its watch catches up"
		if len(late) > 1 {
			verb = "have not, and may still accept the key until their watches catch up"
		}
		fmt.Fprintf(&b, "%s, but only %d of %d gateway %s confirmed within %v: %s %s.",
			capitalize(what), r.Refusing(), len(r.Replicas), plural(len(r.Replicas), "replica"), roundDuration(r.Timeout),
			strings.Join(late, ", "), verb)
	}
	if len(r.Lapsed) > 0 {
		var names []string
		for _, rep := range r.Lapsed {
			names = append(names, fmt.Sprintf("%s, last heard %s ago", rep.Name, ago(r.At, rep.LastHeard)))
		}
		fmt.Fprintf(&b, " Not counted, as not heard from within %v: %s.", LeaseDuration, strings.Join(names, "; "))
	}
	return b.String()
}

// Confirm waits, up to timeout, until every live gateway replica (a Lease
// labelled LabelReplica in systemNamespace, renewed within LeaseDuration)
// has applied the APIKey change at resource version rv in namespace
// keyNamespace, and returns what it found then. The error is for Leases
// that cannot be read at all (RBAC: get, list and watch Leases in the
// system namespace); running out of time is a Result that is not
// Confirmed.
func Confirm(ctx context.Context, c client.WithWatch, systemNamespace, keyNamespace string, rv uint64, timeout time.Duration) (Result, error) {
	start := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(250 * time.Millisecond) // Leases lapse with no event
	defer tick.Stop()
	leases := map[string]*coordinationv1.Lease{}
	result := func() Result {
		now := time.Now()
		r := Result{Elapsed: now.Sub(start), Timeout: timeout, At: now}
		for _, l := range leases {
			rep := Replica{Name: holder(l)}
			if l.Spec.RenewTime != nil {
				rep.LastHeard = l.Spec.RenewTime.Time
			}
			rep.Refuses = refuses(l, keyNamespace, rv)
			switch age := now.Sub(rep.LastHeard); {
			case age < leaseDuration(l):
				r.Replicas = append(r.Replicas, rep)
			case age < lapsedShown:
				r.Lapsed = append(r.Lapsed, rep)
			}
		}
		byName := func(a, b Replica) int { return strings.Compare(a.Name, b.Name) }
		slices.SortFunc(r.Replicas, byName)
		slices.SortFunc(r.Lapsed, byName)
		return r
	}
	selector := client.MatchingLabels{LabelReplica: "true"}
	for {
		list := &coordinationv1.LeaseList{}
		if err := c.List(ctx, list, client.InNamespace(systemNamespace), selector); err != nil {
			return result(), fmt.Errorf("reading the gateway replicas' Leases in %s: %w", systemNamespace, err)
		}
		clear(leases)
		for i := range list.Items {
			leases[list.Items[i].Name] = &list.Items[i]
		}
		if r := result(); r.Confirmed() {
			return r, nil
		}
		w, err := c.Watch(ctx, &coordinationv1.LeaseList{}, client.InNamespace(systemNamespace), selector,
			&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
		if err != nil {
			return result(), fmt.Errorf("watching the gateway replicas' Leases in %s: %w", systemNamespace, err)
		}
		relist := false
		for !relist {
			select {
			case <-ctx.Done():
				w.Stop()
				return result(), ctx.Err()
			case <-deadline.C:
				w.Stop()
				return result(), nil
			case <-tick.C:
			case ev, ok := <-w.ResultChan():
				if !ok || ev.Type == watch.Error {
					relist = true
					break
				}
				l, isLease := ev.Object.(*coordinationv1.Lease)
				if !isLease {
					continue
				}
				if ev.Type == watch.Deleted {
					delete(leases, l.Name)
				} else {
					leases[l.Name] = l
				}
			}
			if r := result(); r.Confirmed() {
				w.Stop()
				return r, nil
			}
		}
		w.Stop()
	}
}

// refuses reports whether the replica of Lease l has applied the change at
// rv of an APIKey in namespace ns.
func refuses(l *coordinationv1.Lease, ns string, rv uint64) bool {
	var scopes map[string]string
	if err := json.Unmarshal([]byte(l.Annotations[AnnotationApplied]), &scopes); err != nil || len(scopes) == 0 {
		return false
	}
	applied, ok := scopes[ns]
	if !ok {
		if applied, ok = scopes[AllNamespaces]; !ok {
			// It watches other namespaces only, and refuses every key of
			// this one: they are never in its index.
			return true
		}
	}
	v, err := strconv.ParseUint(applied, 10, 64)
	return err == nil && v >= rv
}

func holder(l *coordinationv1.Lease) string {
	if h := l.Spec.HolderIdentity; h != nil && *h != "" {
		return *h
	}
	return strings.TrimPrefix(l.Name, LeasePrefix)
}

func leaseDuration(l *coordinationv1.Lease) time.Duration {
	if s := l.Spec.LeaseDurationSeconds; s != nil && *s > 0 {
		return time.Duration(*s) * time.Second
	}
	return LeaseDuration
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return roundDuration(max(now.Sub(t), 0)).String()
}

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond)
	case d < time.Minute:
		return d.Round(100 * time.Millisecond)
	default:
		return d.Round(time.Second)
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
