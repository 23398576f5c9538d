package quota

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	guber "github.com/gubernator-io/gubernator/v2"
)

// peerList is the peer list an Engine counts with, as its users see it:
// an ID, and a channel closed when the list is replaced.
type peerList struct {
	id      string
	changed chan struct{}
}

// PeerList is the ID of the peer list this replica counts with now (the
// same on every replica that has the same list; "" without a mesh) and a
// channel closed when the list changes. A counter whose count must follow
// the requests in flight rather than start over when its owner changes (a
// concurrency limit, gateway/policy) puts the ID in its key and counts its
// slots again under the new ID when the channel closes.
func (e *Engine) PeerList() (id string, changed <-chan struct{}) {
	l := e.peerList.Load()
	return l.id, l.changed
}

// PeerListID is the ID PeerList gives on a replica of a mesh whose peer
// list holds addrs (in any order).
func PeerListID(addrs []string) string {
	if len(addrs) == 0 {
		return ""
	}
	return peerListID(peerInfos(addrs, addrs[0]))
}

// peerListID names a sorted peer list by the first 8 bytes of its hash:
// short enough for a counter key, and two lists that collide only merge
// two counts of one key.
func peerListID(infos []guber.PeerInfo) string {
	addrs := make([]string, len(infos))
	for i, p := range infos {
		addrs[i] = p.GRPCAddress
	}
	sum := sha256.Sum256([]byte(strings.Join(addrs, "\n")))
	return hex.EncodeToString(sum[:8])
}
