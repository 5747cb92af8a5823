// Package errclass is the one error vocabulary of sync: what an error
// means for it (Class), and the one function that says so (Classify).
//
// A package declares the class of its own errors where it defines them:
// a sentinel made by New carries its class, and a typed error may have a
// Class method. Classify then needs to import none of them, so every
// package, from the replication link and the destination pool up to the
// supervisor, can use it:
//
//	ErrOOM = errclass.New(errclass.Fatal, "apply: destination out of memory")
//	...
//	switch errclass.Classify(err) {
//	case errclass.Retry: // reconnect with backoff, resume by partial resync
//	case errclass.FullResync: // end the run; flush and fully sync everything
//	case errclass.Fatal: // stop sync; keep the error on its source
//	}
//
// The classes are documented for users in docs/semantics.md (Errors) and
// docs/reliability.md.
package errclass
