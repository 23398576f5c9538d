package access

import (
	"errors"
	"testing"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

func TestCheck(t *testing.T) {
	const (
		active  = gatewayv1alpha1.PhaseActive
		pending = gatewayv1alpha1.PhasePending
		failed  = gatewayv1alpha1.PhaseFailed
		revoked = gatewayv1alpha1.PhaseRevoked
		expired = gatewayv1alpha1.PhaseExpired
	)
	var (
		alice  = Actor{User: "alice"}
		bob    = Actor{User: "bob"}
		admin  = Actor{User: "root", Admin: true}
		server = Actor{} // the CLI: the API server judges who
	)
	for _, tc := range []struct {
		actor  Actor
		act    Action
		status gatewayv1alpha1.Phase
		want   error // nil: allowed
	}{
		// The owner.
		{alice, See, revoked, nil},
		{alice, Revoke, active, nil},
		{alice, Revoke, pending, nil},
		{alice, Revoke, failed, nil},
		{alice, Revoke, revoked, ErrNoLongerWorks},
		{alice, Revoke, expired, ErrNoLongerWorks},
		{alice, Rotate, active, nil},
		{alice, Rotate, pending, ErrNotActive},
		{alice, Rotate, expired, ErrNotActive},
		{alice, Rotate, revoked, ErrNotActive},
		{alice, Delete, active, nil},
		{alice, Delete, revoked, nil},
		{alice, Delete, expired, nil},
		{alice, SetPolicy, active, ErrAdminOnly},
		// Someone else: sees nothing, whatever the state.
		{bob, See, active, ErrHidden},
		{bob, Revoke, active, ErrHidden},
		{bob, Rotate, active, ErrHidden},
		{bob, Delete, revoked, ErrHidden},
		{bob, SetPolicy, active, ErrHidden},
		// An admin: everything but rotating someone else's key.
		{admin, See, active, nil},
		{admin, Revoke, active, nil},
		{admin, Revoke, revoked, ErrNoLongerWorks},
		{admin, Delete, active, nil},
		{admin, Delete, expired, nil},
		{admin, SetPolicy, active, nil},
		{admin, Rotate, active, ErrOwnerOnly},
		{admin, Rotate, revoked, ErrOwnerOnly},
		// The CLI: the state only.
		{server, Rotate, active, nil},
		{server, Rotate, expired, ErrNotActive},
		{server, Revoke, revoked, ErrNoLongerWorks},
		{server, Delete, active, nil},
	} {
		err := Check(tc.actor, tc.act, Key{Owner: "alice", Status: tc.status})
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%+v may %s alice's %s key: got %v, want %v", tc.actor, tc.act, tc.status, err, tc.want)
		}
	}
}

func TestAdminRotatingOwnKey(t *testing.T) {
	if err := Check(Actor{User: "root", Admin: true}, Rotate, Key{Owner: "root", Status: gatewayv1alpha1.PhaseActive}); err != nil {
		t.Errorf("an admin rotating their own key: %v", err)
	}
}

func TestNotActiveSaysTheStatus(t *testing.T) {
	err := Check(Actor{User: "alice"}, Rotate, Key{Owner: "alice", Status: gatewayv1alpha1.PhaseExpired})
	if err == nil || err.Error() != "the key is Expired: only an Active key can be rotated; create a new key instead" {
		t.Errorf("got %v", err)
	}
}
