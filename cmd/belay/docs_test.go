package main

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/internal/cli"
)

// TestDocumentedCommandsExist reads every `belay …` command line in the
// README and docs/ (code blocks and inline code) and checks that the command
// exists and takes every --flag the line shows: docs say what the code does.
func TestDocumentedCommandsExist(t *testing.T) {
	files, _ := filepath.Glob("../../docs/*.md")
	files = append(files, "../../README.md")
	root := newRootCmd(cli.New())
	inline := regexp.MustCompile("`(belay [^`]+)`")
	flagRE := regexp.MustCompile(`(?:^|[\s\[(|])(--[a-z][a-z0-9-]*)`)
	checked := 0
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		inBlock, n := false, 0
		for sc.Scan() {
			n++
			line := sc.Text()
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				inBlock = !inBlock
				continue
			}
			var cmds []string
			if inBlock {
				l := strings.TrimPrefix(strings.TrimSpace(line), "$ ")
				l = strings.TrimPrefix(l, "sudo ")
				if strings.HasPrefix(l, "belay ") {
					cmds = append(cmds, strings.SplitN(l, "#", 2)[0])
				}
			} else {
				for _, m := range inline.FindAllStringSubmatch(line, -1) {
					cmds = append(cmds, m[1])
				}
			}
			var split []string
			for _, c := range cmds {
				for _, part := range strings.Split(c, "&&") {
					if part = strings.TrimSpace(part); strings.HasPrefix(part, "belay ") {
						split = append(split, part)
					}
				}
			}
			for _, c := range split {
				checked++
				if msg := checkDocumented(root, c, flagRE); msg != "" {
					t.Errorf("%s:%d: `%s`: %s", filepath.Base(f), n, strings.TrimSpace(c), msg)
				}
			}
		}
		fh.Close()
	}
	if checked < 30 {
		t.Fatalf("only %d documented command lines found: the scan is broken", checked)
	}
}

func checkDocumented(root *cobra.Command, line string, flagRE *regexp.Regexp) string {
	words := strings.Fields(line)[1:]
	var path []string
	for _, w := range words {
		if !regexp.MustCompile(`^[a-z][a-z0-9-]*$`).MatchString(w) {
			break
		}
		path = append(path, w)
	}
	cmd, rest, err := root.Find(path)
	if err != nil {
		return err.Error()
	}
	// A word left over that looks like a subcommand of a command with
	// subcommands and no args of its own is an unknown subcommand.
	if len(rest) > 0 && cmd.HasSubCommands() && cmd.Args == nil && !cmd.Runnable() {
		return "unknown subcommand " + rest[0] + " of " + cmd.CommandPath()
	}
	// `belay drill <kind> [--variant V]`: a placeholder for a subcommand;
	// each flag must exist on one of them.
	cands := []*cobra.Command{cmd}
	if len(words) > len(path) && strings.HasPrefix(words[len(path)], "<") && cmd.HasSubCommands() {
		cands = cmd.Commands()
	}
	for _, m := range flagRE.FindAllStringSubmatch(line, -1) {
		name := strings.TrimPrefix(m[1], "--")
		// cobra adds --help to every command when it runs, not before.
		found := name == "help"
		for _, c := range cands {
			if c.Flags().Lookup(name) != nil || c.InheritedFlags().Lookup(name) != nil || c.PersistentFlags().Lookup(name) != nil {
				found = true
			}
		}
		if !found {
			return cmd.CommandPath() + " has no flag --" + name
		}
	}
	return ""
}
