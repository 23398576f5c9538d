package console

import (
	"cmp"
	"context"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

// Key statuses as the console shows them.
const (
	StatusActive  = "Active"
	StatusRevoked = "Revoked"
	StatusExpired = "Expired"
	StatusPending = "Pending"
	StatusFailed  = "Failed"
)

// keyItem is a key as the console shows it and the API returns it. It has
// no field that could hold key material: the console never has any to put
// here, apart from the one create response, which carries the key next to
// (not inside) an item.
//
// Namespace is where the APIKey lives: the console namespace for keys made
// here, another one for keys made with kubectl. Name is unique only within
// it.
type keyItem struct {
	Name        string     `json:"name"`
	Namespace   string     `json:"namespace"`
	DisplayName string     `json:"displayName,omitempty"`
	Prefix      string     `json:"prefix,omitempty"`
	Status      string     `json:"status"`
	LastUsedAt  *time.Time `json:"lastUsedAt"`
	ExpiresAt   *time.Time `json:"expiresAt"`
	CreatedAt   time.Time  `json:"createdAt"`
	RevokedAt   *time.Time `json:"revokedAt,omitempty"`
	Owner       string     `json:"owner"`
}

// Label is what a person calls the key: its display name, else its name.
func (k keyItem) Label() string { return cmp.Or(k.DisplayName, k.Name) }

// Revocable tells whether revoking would change anything.
func (k keyItem) Revocable() bool {
	return k.Status == StatusActive || k.Status == StatusPending || k.Status == StatusFailed
}

// RevokeCommand is how the key's owner revokes it from a terminal. The
// console shows it for keys outside its namespace, which it cannot revoke:
// the gateway may patch APIKeys only there (config/rbac/gateway_role.yaml).
// Names and namespaces are DNS names, so the command needs no quoting.
func (k keyItem) RevokeCommand() string {
	return "kubectl apikey revoke " + k.Name + " -n " + k.Namespace
}

func itemOf(k *gatewayv1alpha1.APIKey, now time.Time) keyItem {
	return keyItem{
		Name:        k.Name,
		Namespace:   k.Namespace,
		DisplayName: k.Spec.DisplayName,
		Prefix:      k.Status.Prefix,
		Status:      statusOf(k, now),
		LastUsedAt:  timeOf(k.Status.LastUsedAt),
		ExpiresAt:   timeOf(k.ResolvedExpiry()),
		CreatedAt:   k.CreationTimestamp.UTC(),
		RevokedAt:   timeOf(k.Status.RevokedAt),
		Owner:       k.Spec.Owner,
	}
}

// statusOf is what the user should believe about the key right now. It
// follows the gateway rather than the controller's last word: a revoked or
// past-expiry key is refused by every gateway at once, even before the
// controller has updated its phase.
func statusOf(k *gatewayv1alpha1.APIKey, now time.Time) string {
	if k.Spec.Revoked || k.Status.Phase == gatewayv1alpha1.PhaseRevoked {
		return StatusRevoked
	}
	if k.Status.Phase == gatewayv1alpha1.PhaseExpired {
		return StatusExpired
	}
	if exp := k.ResolvedExpiry(); exp != nil && !now.Before(exp.Time) {
		return StatusExpired
	}
	switch k.Status.Phase {
	case gatewayv1alpha1.PhaseActive:
		return StatusActive
	case gatewayv1alpha1.PhaseFailed:
		return StatusFailed
	default:
		return StatusPending
	}
}

func timeOf(t *metav1.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// listKeys returns the keys id may see, newest first, narrowed to owner
// when given; for admins also every owner seen, for the filter. The keys
// come from every namespace the gateway watches, not only the console's:
// a user's keys made with kubectl in a team namespace are theirs too (the
// admission policy makes whoever creates a key its owner; only admins may
// name another). The console can revoke only those in its own namespace;
// see revokeKey.
func (c *Console) listKeys(ctx context.Context, id *Identity, owner string) ([]keyItem, []string, error) {
	// Every watched namespace can hold many keys, and a page load needs
	// only a few: read the cache's objects in place (itemOf copies what it
	// keeps and changes nothing) instead of deep-copying all of them.
	var list gatewayv1alpha1.APIKeyList
	if err := c.reader.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, nil, err
	}
	now := time.Now()
	var items []keyItem
	var owners []string
	for i := range list.Items {
		k := &list.Items[i]
		if !id.mayManage(k.Spec.Owner) {
			continue
		}
		if id.Admin && !slices.Contains(owners, k.Spec.Owner) {
			owners = append(owners, k.Spec.Owner)
		}
		if owner != "" && k.Spec.Owner != owner {
			continue
		}
		items = append(items, itemOf(k, now))
	}
	slices.SortFunc(items, func(a, b keyItem) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Namespace, b.Namespace))
	})
	slices.Sort(owners)
	return items, owners, nil
}
