package console

import (
	"cmp"
	"maps"
	"slices"
	"time"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/keyindex"
	"github.com/codevector/codevector/keys/access"
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
	// AwaitingReveal: no key has been generated yet; its owner receives it
	// with RevealCommand (it is sealed to a key pair on their machine).
	AwaitingReveal bool `json:"awaitingReveal,omitempty"`

	// Previous is the key a rotation replaced, while it still works.
	Previous *previousItem `json:"previous,omitempty"`

	// The key's policy (docs/design.md, section 12, usage.go). Models absent:
	// every model; limits absent: none; budget absent: none. Usage is
	// absent for a key with none of the three, which the gateway serves
	// without counting anything.
	Models []string                `json:"models,omitempty"`
	Limits *gatewayv1alpha1.Limits `json:"limits,omitempty"`
	Budget *budgetItem             `json:"budget,omitempty"`
	Usage  *usageItem              `json:"usage,omitempty"`

	// Actions are what the signed-in user may do with the key now
	// (keys/access), which the row menu offers: "rotate", "revoke",
	// "delete". (Admins change limits with the policy API, policy.go.)
	Actions []access.Action `json:"actions,omitempty"`
}

// previousItem is status.previous as the console shows it.
type previousItem struct {
	Prefix     string     `json:"prefix"`
	ExpiresAt  time.Time  `json:"expiresAt"`
	LastUsedAt *time.Time `json:"lastUsedAt"`
}

// expiringSoon is how long before its expiry a key gets a badge.
const expiringSoon = 7 * 24 * time.Hour

// ExpiresWithin says whether an active key expires within 7 days of now.
func (k keyItem) ExpiresWithin(now time.Time) bool {
	return k.Status == StatusActive && k.ExpiresAt != nil && k.ExpiresAt.After(now) && k.ExpiresAt.Sub(now) <= expiringSoon
}

// May tells whether the row menu offers act ("revoke", "rotate",
// "delete").
func (k keyItem) May(act string) bool { return slices.Contains(k.Actions, access.Action(act)) }

// HasActions tells whether the row has a menu.
func (k keyItem) HasActions() bool { return len(k.Actions) > 0 }

// Label is what a person calls the key: its display name, else its name.
func (k keyItem) Label() string { return cmp.Or(k.DisplayName, k.Name) }

// RevealCommand is how the key's owner has it generated and receives it.
func (k keyItem) RevealCommand() string {
	return "kubectl apikey reveal " + k.Name + " -n " + k.Namespace
}

// actionsOf lists what id may do with f now, in menu order. Revoke and
// delete follow the admission policy's rule in any namespace the gateway
// watches, and so does rotating: the new key's reveal is written in the
// system namespace, where the gateway may read it, wherever the key is.
// Deleting a key that works is left to kubectl apikey delete, which asks
// first: the console deletes what no longer works, and revokes the rest.
func actionsOf(id *Identity, f *keyindex.APIKeyFacts, now time.Time) []access.Action {
	var acts []access.Action
	for _, act := range []access.Action{access.Rotate, access.Revoke, access.Delete} {
		if id.may(act, f, now) != nil {
			continue
		}
		if act == access.Delete && access.Works(gatewayv1alpha1.Phase(statusOf(f, now))) {
			continue
		}
		acts = append(acts, act)
	}
	return acts
}

func itemOf(k *keyindex.APIKeyFacts, now time.Time) keyItem {
	item := keyItem{
		Name:        k.Name.Name,
		Namespace:   k.Name.Namespace,
		DisplayName: k.DisplayName,
		Prefix:      k.Prefix,
		Status:      statusOf(k, now),
		LastUsedAt:  timeOf(k.LastUsedAt),
		ExpiresAt:   timeOf(k.ExpiresAt),
		CreatedAt:   k.CreatedAt.UTC(),
		RevokedAt:   timeOf(k.RevokedAt),
		Owner:       k.Owner,

		AwaitingReveal: k.AwaitingRevealKey,
	}
	if k.PreviousPrefix != "" && now.Before(k.PreviousExpiresAt) && item.Status == StatusActive {
		item.Previous = &previousItem{Prefix: k.PreviousPrefix, ExpiresAt: k.PreviousExpiresAt.UTC(), LastUsedAt: timeOf(k.PreviousLastUsedAt)}
	}
	if p := k.Policy; p != nil {
		item.Models, item.Limits = p.Models, p.Limits
		item.Usage, item.Budget = policyItems(p, k.CreatedAt, now)
	}
	return item
}

// statusOf is what the user should believe about the key right now. It
// follows the gateway rather than the controller's last word: a revoked or
// past-expiry key is refused by every gateway at once, even before the
// controller has updated its phase. A key being deleted is refused as
// revoked, so it is shown as Revoked too. The rule is
// gatewayv1alpha1.StatusOf, which the CLI and the index follow as well; the
// console's Status* constants are its phases' names.
func statusOf(k *keyindex.APIKeyFacts, now time.Time) string {
	return string(gatewayv1alpha1.StatusOf(k.Revoked, k.Deleting, k.Phase, k.ExpiresAt, now))
}

func timeOf(t time.Time) *time.Time {
	if t.IsZero() {
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
// name another), and the console revokes and deletes them as it does its
// own. A key being deleted is left out: its owner asked for it to go, and
// only the manager's finalizer keeps it a moment longer.
func (c *Console) listKeys(id *Identity, owner string) ([]keyItem, []string) {
	now := c.now()
	var items []keyItem
	owners := map[string]bool{}
	for _, k := range c.keys.APIKeys() {
		if k.Deleting || id.may(access.See, k, now) != nil {
			continue
		}
		if id.Admin {
			owners[k.Owner] = true
		}
		if owner != "" && k.Owner != owner {
			continue
		}
		item := itemOf(k, now)
		item.Actions = actionsOf(id, k, now)
		items = append(items, item)
	}
	slices.SortFunc(items, func(a, b keyItem) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Namespace, b.Namespace))
	})
	return items, slices.Sorted(maps.Keys(owners))
}
