package cewire

// ValidExtensionName reports whether name is a CloudEvents extension name:
// lower-case a-z and 0-9, and not data or data_base64.
func ValidExtensionName(name string) bool {
	return name != "" && name != "data" && InvalidExtensionChar(name) < 0
}

// InvalidExtensionChar returns the index of the first byte of name that an
// extension name may not have (anything but a-z and 0-9), or -1.
func InvalidExtensionChar(name string) int {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return i
		}
	}
	return -1
}
