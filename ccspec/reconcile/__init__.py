"""`ccspec watch`: converge on the specs in folders, without being asked.

Level-triggered, like a Kubernetes controller: every pass compares the spec on disk with the
recorded state and runs what differs, so a missed event costs latency, never correctness.

    file events (watchdog) --debounce--> changed specs ---------+
    periodic resync (--interval) ------> every spec --------+   |
                                                            v   v
                                   one controller thread per workflow:
                                   validate -> plan -> apply (the engine)

- Only a changed spec (or a file under its folder) is validated and planned again; the
  resync catches missed events and polls jobs nobody watches. A spec file is read again
  only when its stat changed, and a converged workflow is planned again only when its stamp
  changed (its last recorded event, the stat of every file its plan read: the reconciler
  compares it without waking the controller; ccspec.reconcile.stamp), so an idle resync
  costs about a stat per file.
- `/metrics` under `watch --serve` counts passes per workflow and outcome (planned,
  unchanged, failed), their durations, and the passes waiting or under way
  (ccspec.reconcile.passes).
- One set of job slots for all workflows (ccspec.slots): `-j` bounds the jobs on this
  machine across every spec, a remote host's `max_jobs` bounds its jobs across the specs
  that write it alike (type, user, address, port), and a freed slot goes to the waiting
  workflow holding the fewest, then to the run that used the host least lately, so a spec
  just saved starts at the next free slot and a large spec starves no other. `/metrics`
  shows the slots in use per host.
- A spec edited while its workflow runs takes over the run: the engine hands over (running
  jobs stay out there) and the next engine, planned from the new spec, re-attaches. A job
  whose definition changed while it ran is followed to its end, then run again at once.
- An invalid spec gets its errors in its status file and launches nothing new; jobs it
  started earlier are still followed until they end.
- A deleted spec's running jobs keep running and are followed to the end, unless `prune`.
- ccspec's own writes (status files, pictures) are not events.
- After a crash, a new `watch` (or `apply`) re-attaches to what is still running.
- A pass that raises (the state folder unusable, a bug) never ends its thread: it is said
  once (a traceback goes to a file), written into the spec's status file (phase `error`),
  counted (`ccspec_reconcile_errors_total` under `watch --serve`) and tried again after
  1 s, 2 s, 4 s ... at most the resync interval (`Backoff`), until a pass succeeds, which
  takes the error out of the status file again.
"""

from __future__ import annotations

from ccspec.reconcile.files import is_spec_file, specs_touched
from ccspec.reconcile.reconciler import DEBOUNCE, Reconciler

__all__ = ["DEBOUNCE", "Reconciler", "is_spec_file", "specs_touched"]
