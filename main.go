// Command codevector is the one binary of CodeVector's API-key system:
//
//	codevector manager   the APIKey controller
//	codevector gateway   the authenticating LLM gateway, console and docs
//	codevector dev       everything above on an embedded control plane
//	codevector keys      the CLI (also `kubectl apikey` through a kubectl-apikey link)
package main

import (
	"os"

	"github.com/codevector/codevector/internal/commands"
)

func main() {
	os.Exit(commands.Main(os.Args))
}
