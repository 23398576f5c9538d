package scale

import (
	"io"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// The managers here log nothing worth reading during a benchmark.
func init() { ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard))) }
