//go:build noplot

package main

import (
	"errors"

	"github.com/shim6gw/shim6gw/lab"
)

// plotReport: this binary was built with the noplot tag (a gateway build
// without the plotting library, about 7 MB smaller).
func plotReport(*lab.Report, string, string) error {
	return errors.New("lab: --plot: this shim6gw was built with the noplot tag")
}
