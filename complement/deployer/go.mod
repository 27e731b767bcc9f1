module hearth.local/complement/deployer

go 1.25.0

require (
	github.com/matrix-org/complement v0.0.0-00010101000000-000000000000
	github.com/matrix-org/gomatrixserverlib v0.0.0-20260506075950-c9c468727353
)

// Complement and gomatrixserverlib are not on the Go module proxy: run.sh copies them from
// ../shared/complement into ../.work (outside git) and these directives point there.
replace (
	github.com/matrix-org/complement => ../.work/complement
	github.com/matrix-org/gomatrixserverlib => ../.work/gomatrixserverlib
)
