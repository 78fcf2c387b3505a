package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/evothesis/collector/config"
)

// runConfig prints the effective configuration (secrets redacted) or, with
// --markdown, the table of every setting that README.md carries.
func runConfig(_ context.Context, c cli, args []string) error {
	fs := flag.NewFlagSet("config", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	markdown := fs.Bool("markdown", false, "print the README table of every setting")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *markdown {
		fmt.Fprint(c.stdout, configMarkdown())
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tVALUE\tSOURCE")
	for _, v := range config.Vars() {
		val, src := v.Default, "default"
		if e := c.getenv(v.Env); e != "" {
			val, src = e, "environment"
		}
		if v.Secret && val != "" {
			val = "[REDACTED]"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", v.Env, val, src)
	}
	return tw.Flush()
}

func configMarkdown() string {
	var b strings.Builder
	b.WriteString("| Variable | Flag of `serve` | Default | Description |\n|---|---|---|---|\n")
	for _, v := range config.Vars() {
		def := v.Default
		switch {
		case v.Env == "NODE_ID":
			def = "hostname"
		case def == "":
			def = "(empty)"
		}
		fmt.Fprintf(&b, "| `%s` | `--%s` | `%s` | %s |\n", v.Env, v.Flag, def, strings.ReplaceAll(v.Help, "|", "\\|"))
	}
	return b.String()
}
