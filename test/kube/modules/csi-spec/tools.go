//go:build tools

package tools

import _ "github.com/container-storage-interface/spec/lib/go/csi"
