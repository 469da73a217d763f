package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/drainmeter/drainmeter/postgres"
)

const drainsRotateUsage = `usage: drainmeter drains rotate-secret ID|NAME [--overlap 1h] [--url URL]
       drainmeter drains rotate-secret ID|NAME --finish

Gives a drain a new secret and prints its new URL, which works at once on
every dyno. The old secret keeps working for the overlap (at most 168h), so
that no batch is refused while the app's drain is replaced: add the new URL
(heroku drains:add NEW -a APP), then remove the old one (heroku drains:remove
OLD -a APP). --finish ends the overlap now.
`

// rotateSecret gives a drain a new secret, or with --finish ends the
// overlap of the last rotation.
func (c *drainsCmd) rotateSecret(ctx context.Context, args []string) error {
	fs := c.flagSet("rotate-secret")
	var baseURL optString
	fs.Var(&baseURL, "url", "this app's URL (default $DRAINMETER_URL)")
	overlap := fs.Duration("overlap", time.Hour, "how long the old secret keeps working (0: within DRAIN_CACHE_TTL; at most 168h)")
	finish := fs.Bool("finish", false, "end the overlap of the last rotation now (no new secret)")
	target, err := c.parse(fs, drainsRotateUsage, args, true)
	if err != nil {
		return err
	}
	conflict := false
	fs.Visit(func(f *flag.Flag) { conflict = conflict || f.Name == "overlap" || f.Name == "url" })
	if *finish && conflict {
		return errors.New("rotate-secret --finish takes no --overlap or --url: it ends the last rotation's overlap")
	}
	if *overlap < 0 || *overlap > postgres.MaxOverlap {
		return fmt.Errorf("--overlap %s: between 0 and %s", *overlap, postgres.MaxOverlap)
	}
	if *finish {
		return c.finishRotation(ctx, target)
	}
	if err := c.env.requireDB(); err != nil { // before asking for --url: without it nothing works
		return err
	}
	base, err := drainBaseURL(baseURL, c.env.getenv)
	if err != nil {
		return err
	}
	if err := c.open(ctx); err != nil {
		return err
	}
	d, secret, err := c.drains.RotateSecret(ctx, target, *overlap)
	if err != nil {
		return drainErr(err, target)
	}
	printRotation(c.stdout, d, drainURL(base, d.ID, secret))
	return nil
}

// finishRotation ends the overlap of a drain's last rotation.
func (c *drainsCmd) finishRotation(ctx context.Context, target string) error {
	if err := c.open(ctx); err != nil {
		return err
	}
	d, ended, err := c.drains.FinishRotation(ctx, target)
	if err != nil {
		return drainErr(err, target)
	}
	if !ended {
		fmt.Fprintf(c.stdout, "drain %s (%s) has no old secret in an overlap: nothing changed\n", d.Name, d.ID)
		return nil
	}
	fmt.Fprintf(c.stdout, "drain %s (%s): the overlap is over; its old secret stops working within DRAIN_CACHE_TTL\n", d.Name, d.ID)
	return nil
}

// printRotation prints the new URL and the steps that replace the app's
// drain without a refused batch.
func printRotation(w io.Writer, d *postgres.Drain, newURL string) {
	fmt.Fprintf(w, "drain %s (%s) has a new secret; it works at once.\n\n", d.Name, d.ID)
	fmt.Fprintf(w, "new drain URL (its secret is shown only this once):\n  %s\n\n", newURL)
	fmt.Fprintf(w, "replace the app's drain, the new one first:\n")
	fmt.Fprintf(w, "  heroku drains:add '%s' -a %s\n", newURL, d.Name)
	fmt.Fprintf(w, "  heroku drains:remove 'OLD-URL' -a %s    # OLD-URL: the other URL with %s that heroku drains -a %s lists\n\n", d.Name, d.ID, d.Name)
	if d.PreviousExpiresAt == nil {
		fmt.Fprintf(w, "No overlap (--overlap 0): the old URL stops working within DRAIN_CACHE_TTL; batches sent to it then are refused.\n")
		return
	}
	fmt.Fprintf(w, "The old URL keeps working until you remove it, or until the overlap ends at %s\n", d.PreviousExpiresAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "(drainmeter drains rotate-secret %s --finish ends it now). Between the two heroku commands the app's\n", d.Name)
	fmt.Fprintf(w, "logs go to both URLs and are counted twice: run them one right after the other.\n")
}
