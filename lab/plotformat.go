package lab

import (
	"path/filepath"
	"strings"
)

// PlotFormatOK reports whether Plot can write path (by its extension).
func PlotFormatOK(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".svg", ".png":
		return true
	}
	return false
}
