//go:build !noplot

package main

import "github.com/shim6gw/shim6gw/lab/labplot"

// plotReport draws `lab --plot`; the noplot build tag leaves gonum/plot
// and its fonts out of the binary (see noplot.go).
var plotReport = labplot.Plot
