package commands

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/codevector/codevector/internal/devmode"
)

func newDevCommand() *cobra.Command {
	var listen, stateDir, logLevel string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run everything on this machine: control plane, manager, gateway",
		Long: `Runs the whole system on this machine: etcd and kube-apiserver (data kept in
--state-dir), the CRD and admission policies, the manager, and the gateway
with its console and docs. Ctrl-C stops everything.

Set OPENAI_API_KEY and/or ANTHROPIC_API_KEY to use real providers; without
them the openai provider is a built-in echo stand-in.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newDevLogger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			return devmode.Run(cmd.Context(), devmode.Options{
				Listen:   listen,
				StateDir: stateDir,
				Logger:   log,
				Getenv:   os.Getenv,
				Stdout:   cmd.OutOrStdout(),
				Stderr:   cmd.ErrOrStderr(),
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&listen, "listen", "localhost:8080", "Address of the gateway, console and docs")
	fs.StringVar(&stateDir, "state-dir", ".codevector/dev", "Directory for etcd's data, logs and DIR/kubeconfig (kept across restarts)")
	fs.StringVar(&logLevel, "log-level", "info", "Log level: debug, info, warn or error")
	return cmd
}

// newDevLogger sets up human-readable logs on stderr for both halves of
// the process: the manager (controller-runtime's logr) and the gateway
// (slog).
func newDevLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	zl := zapcore.InfoLevel
	if l < slog.LevelInfo {
		zl = zapcore.DebugLevel
	} else if l > slog.LevelInfo {
		zl = zapcore.Level(l / 4) // slog's warn (4) and error (8) are zap's 1 and 2
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(w), zap.ConsoleEncoder(), zap.Level(zl)))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
