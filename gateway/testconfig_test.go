package gateway

import "github.com/shim6gw/shim6gw/gateway/config/configtest"

const goodConfig = configtest.Good

var writeConfig = configtest.Write
