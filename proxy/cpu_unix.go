//go:build unix

package proxy

import "syscall"

// processCPU returns the CPU seconds this process spent in the kernel and
// in user space.
func processCPU() (sys, user float64, ok bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0, false
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Stime), tv(ru.Utime), true
}
