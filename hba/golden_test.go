package hba_test

// goldenBook pins entries 0 and 1 of NewBook("shim6gw test secret",
// sitePrefixes, 2) at Sec 0: a regression pin (produced by this code), not
// an external vector; TestBookDerivation checks how it is derived.
var goldenBook = []string{
	"2001:db8:a:1:ed:d587:f552:dce4",
	"2001:db8:b:1:189d:20dc:f485:fb14",
	"2001:db8:a:1:12:8d4f:2cc1:cd25",
	"2001:db8:b:1:8f7:dddc:cd73:ad65",
}
