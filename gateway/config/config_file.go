package config

// fileError is a configuration file that cannot be read (missing,
// unreadable): a configuration error like any other, so exit status 2 and
// no restart loop.
type fileError struct{ err error }

func (e fileError) Error() string { return "config: " + e.err.Error() }

// Unwrap lets errors.Is match both the cause (os.ErrNotExist) and ErrInvalid.
func (e fileError) Unwrap() []error { return []error{e.err, ErrInvalid} }
