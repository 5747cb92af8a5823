package router

//go:generate go run ./internal/cmdgen -o commands_gen.go

// Builtin is the command table generated from a real server at build time
// (see BuiltinVersion). Refresh it at run time with Table.Merge and a
// destination's own COMMAND reply (ParseCommandInfo) so newer commands and
// module commands are covered.
var Builtin = NewTable(builtinCommands())
