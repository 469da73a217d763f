package main

import (
	"fmt"
	"io"

	"github.com/drainmeter/drainmeter/postgres"
)

const keysUsage = `usage: drainmeter keys generate

Prints a new DRAINMETER_KEY: 32 random bytes in base64. DRAINMETER_KEY also
takes 64 hex digits, or any secret of at least 32 characters (the AES key is
then derived from it with HKDF-SHA-256), as Heroku's app.json generator makes.
`

// runKeys prints a new DRAINMETER_KEY.
func runKeys(args []string, stdout, stderr io.Writer) error {
	if len(args) >= 1 && isHelp(args[0]) || len(args) == 2 && args[0] == "generate" && isHelp(args[1]) {
		fmt.Fprint(stdout, keysUsage)
		return nil
	}
	if len(args) != 1 || args[0] != "generate" {
		fmt.Fprint(stderr, keysUsage)
		return errUsage
	}
	fmt.Fprintln(stdout, postgres.NewKey())
	return nil
}
