"""Files a user names, read and written safely.

Reading: every file a spec or a flag names goes through `open_regular` and one
validating reader per format (`read_safetensors`, `read_npz`/`read_npy`, `read_torch`;
`read_weights` picks by suffix). The file is opened once, what was opened is checked (a
regular file, below the allowed directories when there are any), and anything malformed
is refused with a `FileProblem` naming the file and the problem, before what the file
claims is allocated.

Writing (`atomic`): temporary files named `.NAME.tmp-PID-RANDOM` beside their target,
flushed to disk and renamed; stale ones of dead processes removed; a run-directory lock.

This package sits with the core modules: it imports nothing else of dslnet.
"""

from dslnet.fileio.regular import FileProblem, open_regular

__all__ = ["FileProblem", "open_regular"]
