// Command lint checks openapi.yaml: valid OpenAPI 3.1, and what handoff
// asks of it beyond that (openapi.Lint). `make lint` runs it.
package main

import (
	"fmt"
	"os"

	"github.com/handoff-hq/handoff/openapi"
)

func main() {
	doc, err := openapi.Load()
	if err == nil {
		err = openapi.Lint(doc)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("openapi.yaml: %d paths, OpenAPI %s, checked\n", doc.Paths.Len(), doc.OpenAPI)
}
