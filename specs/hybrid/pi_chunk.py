"""One Monte Carlo chunk: how many of N random points of the unit square fall in the circle."""

import os
import random
import socket
import sys

seed, samples = int(sys.argv[1]), int(sys.argv[2])
rng = random.Random(seed)
inside = 0
for i in range(samples):
    x, y = rng.random(), rng.random()
    inside += x * x + y * y <= 1.0
    if i % (samples // 4) == 0:
        print(f"# ccspec progress={100 * i // samples}", flush=True)
print(f"chunk seed={seed} on {socket.gethostname()} (slurm job {os.environ.get('SLURM_JOB_ID', '-')})")
print(f"# ccspec output inside={inside}")
print(f"# ccspec output samples={samples}")
print(f"# ccspec output where={(os.environ.get('SLURM_JOB_ID') and 'slurm') or 'here'}")
