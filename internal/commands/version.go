package commands

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version and commit describe the build. make build and the Dockerfile set
// them with -ldflags "-X github.com/codevector/codevector/internal/commands.version=...";
// a plain `go build` leaves version "dev" and takes the commit from the
// VCS information Go stamps into the binary.
var (
	version = "dev"
	commit  = ""
)

// buildVersion is "VERSION (commit COMMIT, goX.Y)": what `codevector
// version` and `kubectl apikey version` print.
func buildVersion() string {
	c := commit
	if c == "" {
		c = "unknown"
		if info, ok := debug.ReadBuildInfo(); ok {
			var rev, modified string
			for _, s := range info.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					modified = s.Value
				}
			}
			if rev != "" {
				c = rev
				if modified == "true" {
					c += "-dirty"
				}
			}
		}
	}
	return fmt.Sprintf("%s (commit %s, %s)", version, c, runtime.Version())
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and commit of this build",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "codevector %s\n", buildVersion())
			return nil
		},
	}
}
