//go:build unix

package main

import "syscall"

// raiseFileLimit raises the soft limit of open files to the hard limit and
// returns the soft limit then.
func raiseFileLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		want := rl
		want.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return uint64(rl.Cur), err
		}
		rl = want
	}
	return uint64(rl.Cur), nil
}
