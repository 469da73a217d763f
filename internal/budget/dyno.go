package budget

import (
	"io/fs"
	"strconv"
	"strings"
)

// DefaultDynoMemory is assumed when nothing tells the dyno's memory: a
// Standard-1X dyno's.
const DefaultDynoMemory = 512 << 20

// unlimited is a cgroup v1 limit that means none (v1 reports a huge number).
const unlimited = 1 << 50

// DynoMemory returns how much memory the dyno has and where that was read:
// the cgroup's limit (v2 memory.max, or v1 memory/memory.limit_in_bytes,
// read from cgroup, normally os.DirFS("/sys/fs/cgroup")), else
// availableMB (MEMORY_AVAILABLE, in megabytes, as Heroku sets it), else
// 512 MB.
func DynoMemory(cgroup fs.FS, availableMB int64) (int64, string) {
	if cgroup != nil {
		for _, name := range []string{"memory.max", "memory/memory.limit_in_bytes"} {
			b, err := fs.ReadFile(cgroup, name)
			if err != nil {
				continue
			}
			n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
			if err == nil && n > 0 && n < unlimited {
				return n, "cgroup " + name
			}
		}
	}
	if availableMB > 0 && availableMB < unlimited>>20 {
		return availableMB << 20, "MEMORY_AVAILABLE"
	}
	return DefaultDynoMemory, "default 512 MB"
}

// Default is the budget of a dyno with this much memory: 75 % of it, so
// that the dyno stays clear of its quota (R14) whatever the input.
func Default(dynoMemory int64) int64 { return dynoMemory / 4 * 3 }
