// Package config is the collector's whole configuration: one struct, built
// once by cmd/collector from environment variables and command-line flags and
// passed down to each stage. Nothing else in the program reads the
// environment.
//
// Every setting is an environment variable (the seed's names where it has
// them) and also a flag of `collector serve` (the variable's name in lower
// case with dashes: WAL_SYNC is --wal-sync). A flag wins over the variable,
// the variable over the default. Every default works on a laptop.
//
// Vars lists every setting with its default and meaning; README.md's
// configuration table and deploy checks are derived from it, so a variable
// that is not here does not exist.
package config
