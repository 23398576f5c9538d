package testenv

import (
	"testing"
	"time"
)

// Eventually polls cond every 50ms until it returns nil, and fails the test
// with cond's last error when timeout passes. Tests wait on observable
// state this way instead of sleeping for a guessed time.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
