package commands

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"

	"github.com/spf13/cobra"

	"github.com/codevector/codevector/gateway/providers"
	"github.com/codevector/codevector/gateway/server"
)

func newGatewayCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gateway --providers FILE",
		Short: "Run the authenticating LLM gateway, its console and docs",
		Args:  cobra.NoArgs,
	}
	var f gatewayFlags
	f.register(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		log, err := newLogger(cmd.ErrOrStderr(), f.logLevel)
		if err != nil {
			return err
		}
		setSoftMemoryLimit(log)
		if err := f.check(); err != nil {
			return err
		}
		o := f.opts
		o.Logger = log
		o.PodIP = os.Getenv("POD_IP")
		if o.Providers, err = providers.LoadProviders(f.providersFile, os.Getenv); err != nil {
			return err
		}
		cfg, err := restConfig(f.kubeconfig)
		if err != nil {
			return err
		}
		cfg.QPS, cfg.Burst = float32(f.qps), f.burst
		if f.metricsListen != "" {
			if o.MetricsListener, err = net.Listen("tcp", f.metricsListen); err != nil {
				return fmt.Errorf("--metrics-listen: listening on %s: %w (is another process using the port?)", f.metricsListen, err)
			}
			defer o.MetricsListener.Close()
		}
		g, err := server.New(cfg, o)
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", f.listen)
		if err != nil {
			return fmt.Errorf("listening on %s: %w (is another process using the port?)", f.listen, err)
		}
		return g.Run(cmd.Context(), ln)
	}
	return cmd
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}
