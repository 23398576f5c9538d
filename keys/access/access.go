// Package access is the one rule for who may do what to an APIKey, and
// when: the console decides with it what a row menu offers and what its API
// does, and the CLI with it what it asks the API server for. Both follow the
// admission policy config/policies/owner-validate.yaml, which the API server
// enforces for everyone (docs/design.md, section 11):
//
//   - the owner and the admin group may see, revoke and delete a key;
//   - only the owner may rotate it, admins included: the new key is sealed
//     to the key pair of whoever asks, so whoever rotates receives the key;
//   - only the admin group may change its models, limits and budget.
//
// On top of who, the key's effective status (gatewayv1alpha1.StatusOf)
// says when: only an Active key can be rotated, revoking a key that no
// longer works changes nothing, and an Active key is deleted only with a
// confirmation (deleting it stops it working, as revoking does).
package access

import (
	"errors"
	"fmt"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

// Action is what someone asks to do with a key.
type Action string

const (
	See       Action = "see"
	Revoke    Action = "revoke"
	Rotate    Action = "rotate"
	Delete    Action = "delete"
	SetPolicy Action = "change the limits of"
)

// Actor is who asks. User empty means the API server judges who: the CLI
// acts as its user, whose name and groups it does not know, so Check tests
// only the key's state for it and leaves ownership to the admission policy,
// which applies this same rule.
type Actor struct {
	User  string
	Admin bool
}

// Key is what the rule needs to know about a key.
type Key struct {
	Owner  string
	Status gatewayv1alpha1.Phase
}

// Refusals. Check wraps them with the key's status where it matters, so
// errors.Is tells the kind and Error() says why in words.
var (
	// ErrHidden: the actor may not even see the key. Callers that face
	// other users (the console) answer "not found", so nobody learns the
	// names others use.
	ErrHidden = errors.New("the key belongs to someone else")
	// ErrOwnerOnly: the actor sees the key (an admin) but only its owner
	// may do this.
	ErrOwnerOnly = errors.New("only the key's owner can rotate it: the new key is sealed to whoever asks, so only the owner may receive it; an admin can revoke the key instead")
	// ErrAdminOnly: only the admin group may do this.
	ErrAdminOnly = errors.New("only administrators can change a key's models, limits and budget after it is created")
	// ErrNotActive: the action needs an Active key.
	ErrNotActive = errors.New("only an Active key can be rotated; create a new key instead")
	// ErrNoLongerWorks: revoking would change nothing.
	ErrNoLongerWorks = errors.New("the key no longer works, so there is nothing to revoke")
)

// Check says whether a may do act to k: nil, or an error wrapping one of
// the Err* refusals.
func Check(a Actor, act Action, k Key) error {
	if a.User != "" {
		owner := a.User == k.Owner
		switch {
		case !owner && !a.Admin:
			return ErrHidden
		case act == Rotate && !owner:
			return ErrOwnerOnly
		case act == SetPolicy && !a.Admin:
			return ErrAdminOnly
		}
	}
	switch act {
	case Rotate:
		if k.Status != gatewayv1alpha1.PhaseActive {
			return fmt.Errorf("the key is %s: %w", k.Status, ErrNotActive)
		}
	case Revoke:
		if !Works(k.Status) {
			return fmt.Errorf("the key is %s: %w", k.Status, ErrNoLongerWorks)
		}
	}
	return nil
}

// Works tells whether a key of this status works, or may yet (Pending: not
// issued yet; Failed: the controller retries): revoking it changes
// something, and deleting it needs a confirmation.
func Works(s gatewayv1alpha1.Phase) bool {
	return s == gatewayv1alpha1.PhaseActive || s == gatewayv1alpha1.PhasePending || s == gatewayv1alpha1.PhaseFailed
}

// DeleteNeedsConfirmation tells whether deleting a key of this status stops
// a key that works now, which people confirm first (kubectl apikey delete
// asks; the console offers Delete only for keys that no longer work).
func DeleteNeedsConfirmation(s gatewayv1alpha1.Phase) bool {
	return s == gatewayv1alpha1.PhaseActive
}
