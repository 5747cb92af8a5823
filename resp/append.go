package resp

// AppendArray appends an array header for n elements.
func AppendArray(dst []byte, n int) []byte {
	dst = append(dst, TypeArray)
	dst = appendInt(dst, int64(n))
	return append(dst, '\r', '\n')
}

// AppendBulk appends b as a bulk string.
func AppendBulk(dst, b []byte) []byte {
	dst = append(dst, TypeBulk)
	dst = appendInt(dst, int64(len(b)))
	dst = append(dst, '\r', '\n')
	dst = append(dst, b...)
	return append(dst, '\r', '\n')
}

// AppendBulkString appends s as a bulk string.
func AppendBulkString(dst []byte, s string) []byte {
	dst = append(dst, TypeBulk)
	dst = appendInt(dst, int64(len(s)))
	dst = append(dst, '\r', '\n')
	dst = append(dst, s...)
	return append(dst, '\r', '\n')
}

// AppendNull appends the RESP2 nil bulk string.
func AppendNull(dst []byte) []byte { return append(dst, "$-1\r\n"...) }

// AppendInt appends an integer reply.
func AppendInt(dst []byte, n int64) []byte {
	dst = append(dst, TypeInteger)
	dst = appendInt(dst, n)
	return append(dst, '\r', '\n')
}

// AppendSimple appends a simple string reply; s must not contain CR or LF.
func AppendSimple(dst []byte, s string) []byte {
	dst = append(dst, TypeSimple)
	dst = append(dst, s...)
	return append(dst, '\r', '\n')
}

// AppendError appends an error reply; msg should start with an error code
// such as "ERR" and must not contain CR or LF.
func AppendError(dst []byte, msg string) []byte {
	dst = append(dst, TypeError)
	dst = append(dst, msg...)
	return append(dst, '\r', '\n')
}

// AppendCommand appends args as a multi-bulk command.
func AppendCommand(dst []byte, args ...[]byte) []byte {
	dst = AppendArray(dst, len(args))
	for _, a := range args {
		dst = AppendBulk(dst, a)
	}
	return dst
}

// AppendCommandString is AppendCommand for string arguments.
func AppendCommandString(dst []byte, args ...string) []byte {
	dst = AppendArray(dst, len(args))
	for _, a := range args {
		dst = AppendBulkString(dst, a)
	}
	return dst
}
